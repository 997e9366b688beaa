import { answersWithin, MAX_CHAT_PEERS, SETUP_ANSWER_BYTES, type ChatMember, type ChatType, type ChatView, type MessageView } from '@parley/contracts';
import { itemsWithinBudget } from '@parley/http';
import type { Queryable } from '@parley/pg';
import { messageColumns, messageViews, type MessageRow } from '../messages/queries.js';

interface ChatRow {
  id: string;
  type: ChatType;
  title: string | null;
  created_at: Date;
  last_activity_at: Date;
  members: ChatMember[];
  last_message: MessageRow | null;
  unread_count: number;
}

/**
 * The chat as `userId` sees it, or null when the chat does not exist or the user is not a member
 * (the two are indistinguishable on purpose: api.md answers 404 to non-members).
 */
export async function findChatForMember(db: Queryable, chatId: string, userId: string): Promise<ChatView | null> {
  const rows = await selectChats(db, userId, 'c.id = $2', [chatId], 1);
  return (await toChatViews(db, rows, userId))[0] ?? null;
}

/**
 * Membership with the chat's seq it reflects (one statement, so one snapshot of the projection):
 * the chat writer folds the events stored after that seq before it appends for this member.
 */
export async function membershipAt(db: Queryable, chatId: string, userId: string): Promise<{ member: boolean; seq: number }> {
  const { rows } = await db.query<{ member: boolean; seq: number }>(
    `SELECT EXISTS (SELECT 1 FROM messages.chat_members WHERE chat_id = $1 AND user_id = $2) AS member,
            COALESCE((SELECT last_seq FROM messages.chats WHERE id = $1), 0) AS seq`,
    [chatId, userId],
  );
  return { member: rows[0]?.member ?? false, seq: rows[0]?.seq ?? 0 };
}

/** A user's chats with the seq each answer reflects (see membershipAt). */
export async function memberChatsAt(db: Queryable, userId: string): Promise<{ chatIds: string[]; seqs: number[] }> {
  const { rows } = await db.query<{ chat_id: string; last_seq: number }>(
    'SELECT m.chat_id, c.last_seq FROM messages.chat_members m JOIN messages.chats c ON c.id = m.chat_id WHERE m.user_id = $1',
    [userId],
  );
  return { chatIds: rows.map((r) => r.chat_id), seqs: rows.map((r) => r.last_seq) };
}

/**
 * The members' read positions in a chat (those who have read anything): what the live
 * `read.updated` events say, for a client that loads the chat (issue 22: after a reload every "Read"
 * became "Sent"). Positions of people no longer members are left out.
 */
export async function readPositionsOf(db: Queryable, chatId: string): Promise<{ userId: string; seq: number }[]> {
  const { rows } = await db.query<{ user_id: string; seq: number }>(
    `SELECT rp.user_id, rp.seq FROM messages.read_positions rp
       JOIN messages.chat_members m ON m.chat_id = rp.chat_id AND m.user_id = rp.user_id
      WHERE rp.chat_id = $1 AND rp.seq > 0 ORDER BY rp.user_id`,
    [chatId],
  );
  return rows.map((r) => ({ userId: r.user_id, seq: Number(r.seq) }));
}

/** One user's answer in `messages.socketSetups`. */
export interface SocketSetup {
  chatIds: string[];
  seqs: number[];
  peerIds: string[];
}

/**
 * For each user, in order: their chats with each chat's seq, and everyone who shares a chat with
 * them (at most MAX_CHAT_PEERS). Two set-based queries for the whole batch, instead of two requests
 * per socket: a reconnect storm is answered in batches (docs/decisions.md, "Socket set-ups in
 * batches"). Stops adding users once the answer holds about `budgetBytes` of ids (the first user
 * always goes in); the caller asks again for the rest.
 */
export async function socketSetupsOf(db: Queryable, userIds: string[], budgetBytes = SETUP_ANSWER_BYTES): Promise<SocketSetup[]> {
  const [chats, peers] = await Promise.all([
    db.query<{ i: string; chat_id: string; last_seq: number }>(
      `SELECT u.i, m.chat_id, c.last_seq
         FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, i)
         JOIN messages.chat_members m ON m.user_id = u.id
         JOIN messages.chats c ON c.id = m.chat_id`,
      [userIds],
    ),
    db.query<{ i: string; user_id: string }>(
      `SELECT u.i, p.user_id
         FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, i)
        CROSS JOIN LATERAL (
          SELECT DISTINCT p.user_id FROM messages.chat_members m JOIN messages.chat_members p ON p.chat_id = m.chat_id
           WHERE m.user_id = u.id AND p.user_id <> u.id LIMIT ${MAX_CHAT_PEERS}) p`,
      [userIds],
    ),
  ]);
  const answers: SocketSetup[] = userIds.map(() => ({ chatIds: [], seqs: [], peerIds: [] }));
  for (const row of chats.rows) {
    const answer = answers[Number(row.i) - 1]!;
    answer.chatIds.push(row.chat_id);
    answer.seqs.push(row.last_seq);
  }
  for (const row of peers.rows) answers[Number(row.i) - 1]!.peerIds.push(row.user_id);
  return answersWithin(answers, (a) => a.chatIds.length + a.peerIds.length, budgetBytes);
}

export async function isMember(db: Queryable, chatId: string, userId: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM messages.chat_members WHERE chat_id = $1 AND user_id = $2', [chatId, userId]);
  return rowCount === 1;
}

export async function findDirectChatId(db: Queryable, userA: string, userB: string): Promise<string | null> {
  const [a, b] = [userA, userB].sort();
  const { rows } = await db.query<{ chat_id: string }>('SELECT chat_id FROM messages.direct_chats WHERE user_a = $1 AND user_b = $2', [a, b]);
  return rows[0]?.chat_id ?? null;
}

/** A page of the user's chats, newest activity first; the cursor is the last row's (activity, id). */
export async function listChats(
  db: Queryable,
  userId: string,
  limit: number,
  before: { at: string; id: string } | null,
): Promise<{ chats: ChatView[]; last: { at: string; id: string } | null; more: boolean }> {
  const rows = before
    ? await selectChats(db, userId, '(c.last_activity_at, c.id) < ($2::timestamptz, $3::uuid)', [before.at, before.id], limit + 1)
    : await selectChats(db, userId, 'TRUE', [], limit + 1);
  const views = await toChatViews(db, rows.slice(0, limit), userId);
  const chats = views.slice(0, itemsWithinBudget(views));
  const more = rows.length > limit || chats.length < views.length;
  const tail = rows[chats.length - 1];
  return { chats, last: tail ? { at: tail.last_activity_at.toISOString(), id: tail.id } : null, more };
}

async function selectChats(db: Queryable, userId: string, where: string, params: unknown[], limit: number): Promise<ChatRow[]> {
  const { rows } = await db.query<ChatRow>(
    `SELECT c.id, c.type, c.title, c.created_at, c.last_activity_at,
            (SELECT json_agg(json_build_object('userId', m.user_id, 'role', m.role) ORDER BY m.joined_seq, m.user_id)
               FROM messages.chat_members m WHERE m.chat_id = c.id) AS members,
            (SELECT row_to_json(lm) FROM (SELECT ${messageColumns('x')} FROM messages.messages x
               WHERE x.chat_id = c.id ORDER BY x.seq DESC LIMIT 1) lm) AS last_message,
            -- Unread: other people's live messages after the caller's read position.
            (SELECT count(*)::int FROM messages.messages u
              WHERE u.chat_id = c.id AND u.sender_id <> $1 AND u.deleted_at IS NULL
                AND u.seq > COALESCE((SELECT rp.seq FROM messages.read_positions rp WHERE rp.chat_id = c.id AND rp.user_id = $1), 0)
            ) AS unread_count
       FROM messages.chats c
       JOIN messages.chat_members me ON me.chat_id = c.id AND me.user_id = $1
      WHERE ${where}
      ORDER BY c.last_activity_at DESC, c.id DESC
      LIMIT ${Number(limit)}`,
    [userId, ...params],
  );
  return rows;
}

/**
 * Chat rows as the API shows them, each last message as history shows it: with its attachments,
 * reactions and poll (one batched read for the page). Without them a preview of a file or a poll
 * was empty, unlike the live `message.created` of the same message.
 */
async function toChatViews(db: Queryable, rows: ChatRow[], userId: string): Promise<ChatView[]> {
  const lastRows = rows.flatMap((r) => (r.last_message ? [reviveDates(r.last_message)] : []));
  const views = new Map((await messageViews(db, lastRows, userId)).map((v) => [v.id, v]));
  return rows.map((row) => toChatView(row, row.last_message ? (views.get(row.last_message.id) ?? null) : null));
}

function toChatView(row: ChatRow, last: MessageView | null): ChatView {
  return {
    id: row.id,
    type: row.type,
    title: row.title,
    members: row.members ?? [],
    lastMessage: last,
    unreadCount: row.unread_count,
    createdAt: row.created_at.toISOString(),
  };
}

/** row_to_json turns timestamps into strings; MessageRow expects Dates. */
function reviveDates(row: MessageRow): MessageRow {
  const date = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string));
  return { ...row, created_at: date(row.created_at)!, edited_at: date(row.edited_at), deleted_at: date(row.deleted_at), poll_id: row.poll_id ?? null };
}
