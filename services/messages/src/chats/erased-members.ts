import type { Bus } from '@parley/bus';
import type { ChatWriter } from '@parley/chat-writer';
import type { Queryable } from '@parley/pg';
import { erasedUsersIn } from '../ledger.js';
import { membersBasis } from './write.js';

/**
 * Erases a person from one chat, as the erasure process does for every chat it finds and
 * removeErasedMembers for one it missed: one event id for both, so when both act the chat gets one
 * MemberErased. Decided by the chat decider (who inherits an owned group) on the members as of
 * their seq, and again if the chat changed meanwhile: a successor removed concurrently is never named.
 */
export async function eraseMember(
  deps: { writer: ChatWriter },
  db: Queryable,
  chatId: string,
  erased: { userId: string; purged: boolean; onlyIfMember?: boolean },
  meta: { correlationId: string; occurredAt?: Date },
): Promise<void> {
  await deps.writer.execute(chatId, { type: 'EraseMember', ...erased }, await membersBasis(db, chatId), {
    msgId: `erased:${chatId}:${erased.userId}`,
    actorId: null,
    ...meta,
  });
}

/**
 * After members were added to a chat: takes out again those whose account's erasure began
 * meanwhile. `users.admission` said they existed, but an erasure can start between that answer
 * and the append, and its process (erasure.ts) leaves the chats it finds then: the new one was not
 * among them, and the erased account stayed a member for good. The ledger entry is written first
 * of every erasure step, and the erasure process waits for the chats projection before it looks:
 * so either the process sees the membership, or this check sees the ledger.
 */
export async function removeErasedMembers(
  deps: { bus: Bus; namespace: string; pool: Queryable; writer: ChatWriter },
  chatId: string,
  userIds: string[],
  correlationId: string,
): Promise<void> {
  // Only a member: the add may have been refused (a non-member's, a made-up chat id), and then
  // nothing may be written into the chat (e2e/erasure-add-race.test.ts).
  for (const erased of await erasedUsersIn(deps, userIds)) await eraseMember(deps, deps.pool, chatId, { ...erased, onlyIfMember: true }, { correlationId });
}
