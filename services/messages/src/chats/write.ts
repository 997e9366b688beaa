import { waitForCheckpoint, type Appended } from '@parley/bus';
import { initialChatState, type ChatCommand, type ChatState } from '@parley/chat-domain';
import type { Basis, ChatWriter } from '@parley/chat-writer';
import type { ChatEvent, ChatType, MemberRole } from '@parley/contracts';
import { Unavailable } from '@parley/http';
import type { Pool, Queryable } from '@parley/pg';
import { refusalError } from '../messages/send.js';
import { CHATS_PROJECTOR, CHECKPOINT_TABLE } from './projection.js';

export interface WriteDeps {
  pool: Pool;
  writer: ChatWriter;
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
 * Decides `command` on the chat through the writer and waits until the projection shows the
 * event, so the route answers from Postgres (read-your-writes). A refusal becomes its API error;
 * a command that changes nothing (already so) returns null.
 */
export async function writeChat(
  deps: WriteDeps,
  chatId: string,
  command: ChatCommand,
  options: { msgId: string; actorId: string; correlationId: string },
): Promise<Appended<ChatEvent> | null> {
  const appended = await deps.writer.execute(chatId, command, await membersBasis(deps.pool, chatId), options);
  if ('refusal' in appended) {
    if (appended.refusal.ok) return null;
    throw refusalError(appended.refusal);
  }
  if (!(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, CHATS_PROJECTOR, appended.streamSeq))) {
    throw new Unavailable('The change is stored but not yet visible; reload shortly');
  }
  return appended;
}
