import type { JetStreamManager } from '@nats-io/jetstream';

/**
 * Deletes stream messages by sequence, `concurrency` requests in flight. Erasing (the default of
 * the JetStream API) overwrites the message on disk instead of only marking it deleted: retention
 * and erasure must not leave the bytes behind. A sequence that is already gone (an earlier pass
 * that crashed after deleting it) counts as done. Returns how many were deleted now.
 */
export async function deleteStreamSequences(jsm: JetStreamManager, stream: string, seqs: number[], concurrency: number, erase = true): Promise<number> {
  let deleted = 0;
  await eachConcurrently(seqs, concurrency, async (seq) => {
    try {
      if (await jsm.streams.deleteMessage(stream, seq, erase)) deleted++;
    } catch (error) {
      if (!/no message found|not found/i.test((error as Error).message)) throw error;
    }
  });
  return deleted;
}

/** Runs `work` for every item, at most `concurrency` at a time (JetStream requests in flight). */
export async function eachConcurrently<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** Purges every message below `firstFreshSeq` (all of them older than the class's cutoff). */
export async function purgeBelow(jsm: JetStreamManager, stream: string, firstFreshSeq: number): Promise<number> {
  const { purged } = await jsm.streams.purge(stream, { seq: firstFreshSeq });
  return purged;
}

/** Purges every message on the subjects matching `filter` (wildcards allowed). Returns how many. */
export async function purgeSubject(jsm: JetStreamManager, stream: string, filter: string): Promise<number> {
  const { purged } = await jsm.streams.purge(stream, { filter });
  return purged;
}

/**
 * Purges, in one request, every message on the subjects matching `filter` whose stream sequence is
 * below `seq` (JetStream purge with `filter` and `seq`). Returns how many.
 */
export async function purgeSubjectBelow(jsm: JetStreamManager, stream: string, filter: string, seq: number): Promise<number> {
  const { purged } = await jsm.streams.purge(stream, { filter, seq });
  return purged;
}
