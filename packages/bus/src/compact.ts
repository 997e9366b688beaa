import type { JetStreamManager } from '@nats-io/jetstream';
import { compareVersions } from './connect.js';
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
 * Record bytes below a purge point that are erased one by one before the purge (about 19,000 chat
 * events of 440 bytes). A purge drops the message blocks wholly below its point, files and all; in
 * the block it ends in it only marks the messages below the point deleted, and NATS rewrites that
 * block without them only when more than half of it is freed. So without this up to half a block
 * of purged bodies would stay on disk until a later purge drops the block: months on a quiet
 * installation. Blocks of these streams are 8 MiB on NATS 2.9.10, 2.10.27 and 2.15.1 alike
 * (bench/purge-residue.mjs), so erasing one block's worth covers that head whatever the rule.
 */
export const PURGE_EDGE_BYTES = 8 * 1024 * 1024;

/**
 * Erases (deletes with overwrite) the messages in the last `bytes` (PURGE_EDGE_BYTES) below
 * `below`, counted by the stream's average record size, so that a purge to `below` leaves no body
 * on disk. Returns how many it deleted; those already gone are skipped.
 */
export async function eraseBeforePurge(jsm: JetStreamManager, stream: string, below: number, concurrency: number, bytes = PURGE_EDGE_BYTES): Promise<number> {
  const { state } = await jsm.streams.info(stream);
  if (below <= state.first_seq || state.messages === 0) return 0;
  const count = Math.ceil(bytes / Math.max(1, state.bytes / state.messages));
  const seqs: number[] = [];
  for (let seq = below - 1; seq >= Math.max(state.first_seq, below - count); seq--) seqs.push(seq);
  return deleteStreamSequences(jsm, stream, seqs, concurrency);
}

/**
 * Whether a pass erases the edge of its purges (eraseBeforePurge) on a server of `serverVersion`:
 * on 2.9.10 and 2.10.27 an erasure took under 1 ms; on 2.15.1 about 10 ms, and a pass's 19,000
 * erasures there held live sends up to 61 s (docs/performance.md, "Bodies left in the block a
 * purge ends in"). 2.11 to 2.14 are not measured, so the edge is erased only before 2.11; from
 * there on the purged head of the last block stays on disk until a later purge drops that block.
 */
export function erasesPurgeEdge(serverVersion: string | undefined): boolean {
  return serverVersion === undefined || compareVersions(serverVersion, '2.11.0') < 0;
}

/**
 * Stream sequences per purge request for `setting` ('auto' or a number, 0 meaning one request) on
 * a server of `serverVersion`. A purge holds the stream, and every publish to it waits until the
 * purge is done, so steps bound that wait. On NATS 2.9 a purge that ends inside a message block
 * removes that block's messages one at a time: steps of 20,000 held publishes 0.4-0.6 s each,
 * about as long as one purge of a million, so 'auto' is one request there. From 2.10 on such a
 * step costs what its share of blocks does: 15-28 ms for 20,000 against 0.2 s for a million in
 * one (docs/performance.md, "The purge in steps").
 */
export function purgeStepFor(setting: 'auto' | number, serverVersion: string | undefined): number {
  if (setting !== 'auto') return setting;
  return serverVersion !== undefined && compareVersions(serverVersion, '2.10.0') >= 0 ? AUTO_PURGE_STEP : 0;
}

/** The step 'auto' takes on servers from 2.10 on. */
export const AUTO_PURGE_STEP = 20_000;

/**
 * Purges every message below `below`, in steps of `step` stream sequences (0: one request),
 * resting between steps as long as the last one took, so that live publishes get at least half
 * of the stream's time. Returns how many messages went.
 */
export async function purgePaced(jsm: JetStreamManager, stream: string, below: number, step: number): Promise<number> {
  if (below <= 1) return 0;
  if (step <= 0) return purgeBelow(jsm, stream, below);
  const { state } = await jsm.streams.info(stream);
  let purged = 0;
  for (let upTo = Math.min(state.first_seq + step, below); ; upTo = Math.min(upTo + step, below)) {
    const started = Date.now();
    purged += await purgeBelow(jsm, stream, upTo);
    if (upTo >= below) return purged;
    await new Promise((r) => setTimeout(r, Date.now() - started));
  }
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
