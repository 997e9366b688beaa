import type { MessageView } from '@parley/contracts';
import type { Queryable } from '@parley/pg';

export interface MessageRow {
  id: string;
  chat_id: string;
  seq: number;
  sender_id: string;
  body: string;
  reply_to: string | null;
  created_at: Date;
  edited_at: Date | null;
  deleted_at: Date | null;
}

export function messageColumns(alias: string): string {
  return ['id', 'chat_id', 'seq', 'sender_id', 'body', 'reply_to', 'created_at', 'edited_at', 'deleted_at'].map((c) => `${alias}.${c}`).join(', ');
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

export function toMessageView(row: MessageRow): MessageView {
  return {
    id: row.id,
    chatId: row.chat_id,
    senderId: row.sender_id,
    body: row.deleted_at ? '' : row.body,
    replyTo: row.reply_to,
    attachments: [],
    reactions: [],
    poll: null,
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
