import { readStored, type Bus } from '@parley/bus';
import { streamName, subjects, type ErasureRecorded } from '@parley/contracts';

/**
 * The erasure ledger's entry on each subject, in order (null where it has none), read 50 at a time.
 * A read that fails throws: taken for "not erased", it let an erased account stay in a chat.
 */
async function ledgerEntries(deps: { bus: Bus; namespace: string }, ledgerSubjects: string[]): Promise<(ErasureRecorded | null)[]> {
  const stream = streamName(deps.namespace, 'erasures');
  const entries: (ErasureRecorded | null)[] = [];
  for (let i = 0; i < ledgerSubjects.length; i += 50) {
    const batch = ledgerSubjects.slice(i, i + 50);
    entries.push(...(await Promise.all(batch.map((subject) => readStored<ErasureRecorded>(deps.bus.jsm, stream, { last_by_subj: subject }).then((e) => e?.value ?? null)))));
  }
  return entries;
}

/** The ids among `messageIds` that the erasure ledger records as erased messages. */
export async function erasedMessagesIn(deps: { bus: Bus; namespace: string }, messageIds: string[]): Promise<string[]> {
  const entries = await ledgerEntries(deps, messageIds.map((id) => subjects.erasedMessage(deps.namespace, id)));
  return messageIds.filter((id, k) => {
    const e = entries[k];
    return e?.type === 'ErasureRecorded' && e.data.kind === 'message' && e.data.messageId === id;
  });
}

/** Those of `userIds` whose account's erasure the ledger records, with whether it purged their messages. */
export async function erasedUsersIn(deps: { bus: Bus; namespace: string }, userIds: string[]): Promise<{ userId: string; purged: boolean }[]> {
  const entries = await ledgerEntries(deps, userIds.map((id) => subjects.erasedUser(deps.namespace, id)));
  const erased: { userId: string; purged: boolean }[] = [];
  userIds.forEach((userId, k) => {
    const e = entries[k];
    if (e?.type === 'ErasureRecorded' && e.data.kind === 'user' && e.data.userId === userId) erased.push({ userId, purged: e.data.purgeMessages });
  });
  return erased;
}
