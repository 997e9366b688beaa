import type { MessageView, PollView } from '@parley/contracts';
import type { Queryable } from '@parley/pg';
import { attachmentsOf } from '../attachments/queries.js';

export interface MessageRow {
  id: string;
  chat_id: string;
  seq: number;
  sender_id: string;
  client_msg_id: string;
  body: string;
  reply_to: string | null;
  created_at: Date;
  edited_at: Date | null;
  deleted_at: Date | null;
  poll_id: string | null;
}

export type ReactionSummary = MessageView['reactions'];

export function messageColumns(alias: string): string {
  return ['id', 'chat_id', 'seq', 'sender_id', 'client_msg_id', 'body', 'reply_to', 'created_at', 'edited_at', 'deleted_at', 'poll_id'].map((c) => `${alias}.${c}`).join(', ');
}

/** A history page, newest first, strictly before `beforeSeq` when given. */
export async function historyPage(db: Queryable, chatId: string, limit: number, beforeSeq: number | null): Promise<MessageRow[]> {
  const { rows } = await db.query<MessageRow>(
    `SELECT ${messageColumns('m')} FROM messages.messages m
      WHERE m.chat_id = $1 AND ($2::int IS NULL OR m.seq < $2)
      ORDER BY m.seq DESC LIMIT $3`,
    [chatId, beforeSeq, limit],
  );
  return rows;
}

export async function findMessage(db: Queryable, messageId: string): Promise<MessageRow | null> {
  const { rows } = await db.query<MessageRow>(`SELECT ${messageColumns('m')} FROM messages.messages m WHERE m.id = $1`, [messageId]);
  return rows[0] ?? null;
}

export function toMessageView(
  row: MessageRow,
  extras: { reactions?: ReactionSummary; poll?: PollView | null; attachments?: MessageView['attachments'] } = {},
): MessageView {
  return {
    id: row.id,
    chatId: row.chat_id,
    senderId: row.sender_id,
    body: row.deleted_at ? '' : row.body,
    replyTo: row.reply_to,
    attachments: row.deleted_at ? [] : (extras.attachments ?? []),
    reactions: row.deleted_at ? [] : (extras.reactions ?? []),
    poll: row.deleted_at ? null : (extras.poll ?? null),
    editedAt: row.edited_at?.toISOString() ?? null,
    deletedAt: row.deleted_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
    seq: row.seq,
  };
}

/** The message a sender already sent with this clientMsgId (idempotency beyond JetStream's dedup window). */
export async function findByClientMsgId(db: Queryable, chatId: string, senderId: string, clientMsgId: string): Promise<MessageRow | null> {
  const { rows } = await db.query<MessageRow>(
    `SELECT ${messageColumns('m')} FROM messages.messages m WHERE m.chat_id = $1 AND m.sender_id = $2 AND m.client_msg_id = $3`,
    [chatId, senderId, clientMsgId],
  );
  return rows[0] ?? null;
}

/**
 * The stored message of each (chat, sender, clientMsgId), in the order asked (null where none), in
 * one statement: the gateway checks a connection's first sends in batches.
 */
export async function findByClientMsgIds(
  db: Queryable,
  sends: { chatId: string; senderId: string; clientMsgId: string }[],
): Promise<({ messageId: string; seq: number } | null)[]> {
  if (sends.length === 0) return [];
  const { rows } = await db.query<{ i: number; messageId: string; seq: number }>(
    `SELECT s.i::int AS i, m.id AS "messageId", m.seq
       FROM unnest($1::uuid[], $2::uuid[], $3::text[]) WITH ORDINALITY AS s(chat_id, sender_id, client_msg_id, i)
       JOIN messages.messages m ON m.chat_id = s.chat_id AND m.sender_id = s.sender_id AND m.client_msg_id = s.client_msg_id`,
    [sends.map((s) => s.chatId), sends.map((s) => s.senderId), sends.map((s) => s.clientMsgId)],
  );
  const found: ({ messageId: string; seq: number } | null)[] = sends.map(() => null);
  for (const { i, messageId, seq } of rows) found[i - 1] = { messageId, seq };
  return found;
}

/** Reactions of several messages: per emoji the count, and whether `userId` is among them. */
export async function reactionsOf(db: Queryable, messageIds: string[], userId: string): Promise<Map<string, ReactionSummary>> {
  const out = new Map<string, ReactionSummary>();
  if (messageIds.length === 0) return out;
  const { rows } = await db.query<{ message_id: string; emoji: string; count: number; me: boolean }>(
    `SELECT message_id, emoji, count(*)::int AS count, bool_or(user_id = $2) AS me
       FROM messages.reactions WHERE message_id = ANY($1::uuid[])
      GROUP BY message_id, emoji ORDER BY message_id, min(created_at), emoji`,
    [messageIds, userId],
  );
  for (const r of rows) {
    const list = out.get(r.message_id) ?? [];
    list.push({ emoji: r.emoji, count: r.count, me: r.me });
    out.set(r.message_id, list);
  }
  return out;
}

/** Polls with vote counts and `userId`'s own votes. */
export async function pollsOf(db: Queryable, pollIds: string[], userId: string): Promise<Map<string, PollView>> {
  const out = new Map<string, PollView>();
  if (pollIds.length === 0) return out;
  const { rows } = await db.query<{ id: string; question: string; options: { id: string; text: string }[]; multiple: boolean; closed: boolean }>(
    'SELECT id, question, options, multiple, closed FROM messages.polls WHERE id = ANY($1::uuid[])',
    [pollIds],
  );
  const { rows: votes } = await db.query<{ poll_id: string; option_id: string; votes: number; mine: boolean }>(
    `SELECT poll_id, option_id, count(*)::int AS votes, bool_or(user_id = $2) AS mine
       FROM messages.poll_votes WHERE poll_id = ANY($1::uuid[]) GROUP BY poll_id, option_id`,
    [pollIds, userId],
  );
  for (const p of rows) {
    const mine = votes.filter((v) => v.poll_id === p.id);
    out.set(p.id, {
      id: p.id,
      question: p.question,
      options: p.options.map((o) => ({ ...o, votes: mine.find((v) => v.option_id === o.id)?.votes ?? 0 })),
      multiple: p.multiple,
      closed: p.closed,
      myVotes: mine.filter((v) => v.mine).map((v) => v.option_id),
    });
  }
  return out;
}

/** Message views for rows, with reactions and polls as `userId` sees them. */
export async function messageViews(db: Queryable, rows: MessageRow[], userId: string): Promise<MessageView[]> {
  const [reactions, polls, attachments] = await Promise.all([
    reactionsOf(db, rows.map((r) => r.id), userId),
    pollsOf(db, rows.flatMap((r) => (r.poll_id ? [r.poll_id] : [])), userId),
    attachmentsOf(db, rows.map((r) => r.id)),
  ]);
  return rows.map((r) =>
    toMessageView(r, { reactions: reactions.get(r.id) ?? [], poll: r.poll_id ? (polls.get(r.poll_id) ?? null) : null, attachments: attachments.get(r.id) ?? [] }),
  );
}
