import type { Appended } from '@parley/bus';
import type { Cache } from '@parley/cache';
import { waitForCheckpoint } from '@parley/projector-pg';
import { decide, initialChatState, type ChatCommand, type ChatState, type Refusal } from '@parley/chat-domain';
import type { Basis, ChatWriter } from '@parley/chat-writer';
import type { ChatEvent, ChatType, MemberRole } from '@parley/contracts';
import { Conflict, Forbidden, InvalidRequest, NotFound, Unavailable, type AppError } from '@parley/http';
import type { Pool, Queryable } from '@parley/pg';
import { findMessage, type MessageRow } from '../messages/queries.js';
import { CHATS_PROJECTOR, CHECKPOINT_TABLE, dropChatLists } from './projection.js';

export interface WriteDeps {
  pool: Pool;
  writer: ChatWriter;
  /** The chat lists the event changed are deleted here too, after the checkpoint (dropChatLists). */
  cache: Cache;
}

/**
 * The chat's members and roles as the projection has them, with the seq they reflect (one
 * statement, one snapshot): the basis the chat writer decides on, folding what came after.
 */
export async function membersBasis(db: Queryable, chatId: string): Promise<Basis> {
  const { rows } = await db.query<{ type: ChatType; last_seq: number; user_id: string | null; role: MemberRole | null; joined_seq: number | null }>(
    `SELECT c.type, c.last_seq, m.user_id, m.role, m.joined_seq
       FROM messages.chats c LEFT JOIN messages.chat_members m ON m.chat_id = c.id
      WHERE c.id = $1`,
    [chatId],
  );
  const first = rows[0];
  if (!first) return { seq: 0, state: initialChatState() };
  const members = new Map(rows.filter((r) => r.user_id && r.role).map((r) => [r.user_id!, { role: r.role!, joinedSeq: r.joined_seq ?? 0 }] as const));
  const state: ChatState = { ...initialChatState(), exists: true, type: first.type, headSeq: first.last_seq, members };
  return { seq: first.last_seq, state };
}

/**
 * The members basis plus what the projection holds of one message and one poll. Read after the
 * members: they may reflect a later seq than the basis, which is safe for these facts, since they
 * only ever move one way (a sender never changes; deleted and closed stay so). A message row the
 * caller read before (to find the chat) is read again here for that reason: a deletion or expiry
 * projected between the two reads is at or below the basis's seq, so no folded event brings it,
 * and an edit or reaction was decided on the older row and landed on a deleted message.
 */
export async function basisWith(db: Queryable, chatId: string, facts: { message?: MessageRow | null; pollId?: string }): Promise<Basis> {
  const basis = await membersBasis(db, chatId);
  const messages = new Map(basis.state.messages);
  const polls = new Map(basis.state.polls);
  if (facts.message && facts.message.chat_id === chatId) {
    const m = facts.message;
    const now = await findMessage(db, m.id);
    // Gone since (expired, or purged with its sender's account) counts as deleted.
    messages.set(m.id, { senderId: m.sender_id, seq: m.seq, pollId: m.poll_id, deleted: now ? now.deleted_at !== null : true });
  }
  if (facts.pollId) {
    const { rows } = await db.query<{ message_id: string; created_by: string; options: { id: string }[]; multiple: boolean; closed: boolean; seq: number; deleted: boolean }>(
      `SELECT p.message_id, p.created_by, p.options, p.multiple, p.closed, m.seq, m.deleted_at IS NOT NULL AS deleted
         FROM messages.polls p JOIN messages.messages m ON m.id = p.message_id
        WHERE p.id = $1 AND p.chat_id = $2`,
      [facts.pollId, chatId],
    );
    const poll = rows[0];
    if (poll) {
      polls.set(facts.pollId, { messageId: poll.message_id, createdBy: poll.created_by, optionIds: poll.options.map((o) => o.id), multiple: poll.multiple, closed: poll.closed });
      messages.set(poll.message_id, { senderId: poll.created_by, seq: poll.seq, pollId: facts.pollId, deleted: poll.deleted });
    }
  }
  return { seq: basis.seq, state: { ...basis.state, messages, polls } };
}

/**
 * Decides `command` on `basis` without writing, and throws its refusal: for what must be checked in
 * the API's order before anything else is (a member's bad input is 400, a stranger's is 404), or
 * before a side effect that must precede the event (the erasure ledger). writeChat decides again.
 */
export function precheck(command: ChatCommand, basis: Basis): void {
  const decision = decide(command, basis.state);
  if (!decision.ok) throw refusalError(decision);
}

/**
 * Decides `command` on the chat through the writer and waits until the projection shows the
 * event, so the route answers from Postgres (read-your-writes), then deletes the chat lists it
 * changed, so the members' next GET /chats (the caller's first) reads them again. A refusal
 * becomes its API error; a command that changes nothing (already so) returns null.
 */
export async function writeChat(
  deps: WriteDeps,
  chatId: string,
  command: ChatCommand,
  options: { msgId: string; actorId: string; correlationId: string; basis?: Basis },
): Promise<Appended<ChatEvent> | null> {
  const appended = await deps.writer.execute(chatId, command, options.basis ?? (await membersBasis(deps.pool, chatId)), options);
  if ('refusal' in appended) {
    if (appended.refusal.ok) return null;
    throw refusalError(appended.refusal);
  }
  if (!(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, CHATS_PROJECTOR, appended.streamSeq))) {
    throw new Unavailable('The change is stored but not yet visible; reload shortly');
  }
  await dropChatLists(deps, [appended.event]);
  return appended;
}

/** A decider's refusal as the API's error (api.md's codes). */
export function refusalError(refusal: Refusal): AppError {
  switch (refusal.code) {
    case 'not_found':
      return new NotFound(refusal.message);
    case 'forbidden':
      return new Forbidden(refusal.message);
    case 'conflict':
      return new Conflict('conflict', refusal.message);
    default:
      return new InvalidRequest(refusal.message);
  }
}
