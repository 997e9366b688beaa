import { readStored, type Bus } from '@parley/bus';
import type { ChatWriter } from '@parley/chat-writer';
import { streamName, subjects, type ErasureRecorded } from '@parley/contracts';
import type { Pool } from '@parley/pg';
import { membersBasis } from './write.js';

/**
 * After members were added to a chat: takes out again those whose account's erasure began
 * meanwhile. `users.admission` said they existed, but an erasure can start between that answer
 * and the append, and its process (erasure.ts) leaves the chats it finds then: the new one was not
 * among them, and the erased account stayed a member for good. The ledger entry is written first
 * of every erasure step, and the erasure process waits for the chats projection before it looks:
 * so either the process sees the membership, or this check sees the ledger. Both name the same
 * event id, so when both act the chat gets one MemberErased.
 */
export async function removeErasedMembers(
  deps: { bus: Bus; namespace: string; pool: Pool; writer: ChatWriter },
  chatId: string,
  userIds: string[],
  correlationId: string,
): Promise<void> {
  const stream = streamName(deps.namespace, 'erasures');
  const erased: { userId: string; purged: boolean }[] = [];
  // A lookup of one subject each, 32 at a time (a group is created with up to its member limit).
  for (let i = 0; i < userIds.length; i += 32) {
    const batch = userIds.slice(i, i + 32);
    const entries = await Promise.all(batch.map((userId) => readStored<ErasureRecorded>(deps.bus.jsm, stream, { last_by_subj: subjects.erasedUser(deps.namespace, userId) }).catch(() => null)));
    entries.forEach((entry, k) => {
      const erasure = entry?.value;
      if (erasure?.type === 'ErasureRecorded' && erasure.data.kind === 'user' && erasure.data.userId === batch[k]) erased.push({ userId: batch[k]!, purged: erasure.data.purgeMessages });
    });
  }
  for (const { userId, purged } of erased) {
    await deps.writer.execute(chatId, { type: 'EraseMember', userId, purged }, await membersBasis(deps.pool, chatId), {
      msgId: `erased:${chatId}:${userId}`,
      actorId: null,
      correlationId,
    });
  }
}
