import type { JetStreamManager } from '@nats-io/jetstream';
import { nextOnSubject } from './publish.js';

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

/**
 * Deletes, one by one, every message on the subjects matching `filter` (wildcards allowed) whose
 * stream sequence is below `below` (all of them without it), overwriting each (erase). Returns how
 * many it deleted.
 *
 * Never a purge with a subject filter, nor a `Nats-Rollup: sub` publish, on a stream that live
 * consumers read: NATS 2.9.10 moves every consumer whose filter covers the purged subject past the
 * purge, so those consumers silently skip the events of *other* subjects not yet delivered to them
 * (docs/reliability.md, "Subject purges skip events"). Deleting single messages leaves consumers
 * where they are. Meant for a few messages a subject (a user's events, an upload record, a
 * snapshot): one lookup and one delete each.
 */
export async function deleteSubjectMessages(jsm: JetStreamManager, stream: string, filter: string, below = Number.POSITIVE_INFINITY): Promise<number> {
  let deleted = 0;
  for (let from = 1; ; ) {
    const stored = await nextOnSubject(jsm, stream, filter, from);
    if (!stored || stored.seq >= below) return deleted;
    deleted += await deleteStreamSequences(jsm, stream, [stored.seq], 1);
    from = stored.seq + 1;
  }
}
