import type { JetStreamManager } from '@nats-io/jetstream';
import { compareVersions } from './connect.js';
import { nextOnSubject } from './publish.js';

/**
 * Deletes stream messages by sequence, `concurrency` requests in flight. Erasing (the default of
 * the JetStream API) overwrites the message on disk instead of only marking it deleted: retention
 * and erasure must not leave the bytes behind. A sequence that is already gone (an earlier pass
 * that crashed after deleting it) counts as done. Returns how many were deleted now.
 *
 * Erasures are paced (erasePace): they go in rounds, `concurrency` requests in flight within a
 * round. While they are quick, each round is twice the one before (up to ERASE_ROUND_MAX); after a
 * slow round they go one at a time, each followed by a rest as long as it took. Every erasure
 * holds the stream, and from NATS 2.11 on each one rewrites the whole 8 MiB block it is in (10-13
 * ms on 2.15.1, against under 1 ms on 2.9.10 and 2.10.27, where nothing rests).
 */
export async function deleteStreamSequences(jsm: JetStreamManager, stream: string, seqs: number[], concurrency: number, erase = true): Promise<number> {
  let deleted = 0;
  const deleteOne = async (seq: number) => {
    try {
      if (await jsm.streams.deleteMessage(stream, seq, erase)) deleted++;
    } catch (error) {
      if (!/no message found|not found/i.test((error as Error).message)) throw error;
    }
  };
  if (!erase) {
    await eachConcurrently(seqs, concurrency, deleteOne);
    return deleted;
  }
  let round = concurrency;
  for (let next = 0; next < seqs.length; ) {
    const batch = seqs.slice(next, next + round);
    next += batch.length;
    const started = performance.now();
    await eachConcurrently(batch, concurrency, deleteOne);
    const pace = erasePace(performance.now() - started, batch.length, round);
    round = pace.round;
    if (pace.restMs > 0 && next < seqs.length) await new Promise((r) => setTimeout(r, pace.restMs));
  }
  return deleted;
}

/**
 * An erasure at most this long (ms, on average in its round) is quick: nothing rests after it.
 * 2.9.10 averaged under 1 ms, and 2-5 ms while the server was busy (a pass with rests after those
 * took its compaction step 7.6 s against 6.3-6.6 s without); 2.15.1 takes 10-13 ms, a block rewrite.
 */
export const QUICK_ERASE_MS = 5;
/** The largest round of quick erasures between two looks at the time they take. */
export const ERASE_ROUND_MAX = 256;

/**
 * The next round of a paced erasure after a round of `requests` erasures (of at most `round`)
 * that took `ms`. After quick ones, a round twice as large and no rest. After slow ones, a round
 * of one (the server does them one after another anyway: four in flight on 2.15.1 held the stream
 * 46 ms each) after a rest as long as the round took, so that live publishes get at least half of
 * the stream's time and wait behind one erasure at most.
 */
export function erasePace(ms: number, requests: number, round: number): { round: number; restMs: number } {
  if (requests === 0 || ms / requests <= QUICK_ERASE_MS) return { round: Math.min(round * 2, ERASE_ROUND_MAX), restMs: 0 };
  return { round: 1, restMs: ms };
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
 * Record bytes below a purge point that are erased one by one before the purge, so that the purge
 * leaves no body on disk (edgeBytesFor chooses). A purge drops the message blocks wholly below its
 * point, files and all; in the block it ends in it only marks the messages below the point
 * deleted, and NATS rewrites that block without them only when about half of it is freed (a head
 * of 46 % stayed on disk, one of 50 % did not, on NATS 2.9.10 and 2.15.1 alike:
 * bench/purge-residue.mjs). So without this up to half a block of purged bodies would stay on disk
 * until a later purge drops the block: months on a quiet installation. Blocks of these streams are
 * 8 MiB on 2.9.10, 2.10.27 and 2.15.1.
 */
export const PURGE_BLOCK_BYTES = 8 * 1024 * 1024;
/** Half a block and a quarter more: the head's bound, with room for messages near the point smaller than the stream's average. */
export const PURGE_EDGE_BYTES = 5 * 1024 * 1024;

/**
 * The window eraseBeforePurge erases on a server of `serverVersion`. Where an erasure is cheap
 * (before 2.11: under 1 ms), a whole block (about 19,000 chat events): NATS 2.9 removes the
 * messages of the block a purge ends in one at a time while it holds the stream, and with the
 * whole block erased there are none left to remove (the purge's hold in a 1,000,000-message pass:
 * 0.37-0.53 s with 8 MiB, 0.57-0.64 s with 5 MiB). From 2.11 on, where each erasure rewrites its
 * block, only what the rewrite rule needs: 5 MiB (about 11,900).
 */
export function edgeBytesFor(serverVersion: string | undefined): number {
  return erasesCheaply(serverVersion) ? PURGE_BLOCK_BYTES : PURGE_EDGE_BYTES;
}

/**
 * Erases (deletes with overwrite) the messages in the last `bytes` (edgeBytesFor) below
 * `below`, counted by the stream's average record size, so that a purge to `below` leaves no body
 * on disk. Paced like every erasure (deleteStreamSequences). Returns how many it deleted; those
 * already gone are skipped.
 */
export async function eraseBeforePurge(jsm: JetStreamManager, stream: string, below: number, concurrency: number, bytes: number): Promise<number> {
  const { state } = await jsm.streams.info(stream);
  if (below <= state.first_seq || state.messages === 0) return 0;
  const count = Math.ceil(bytes / Math.max(1, state.bytes / state.messages));
  const seqs: number[] = [];
  for (let seq = below - 1; seq >= Math.max(state.first_seq, below - count); seq--) seqs.push(seq);
  return deleteStreamSequences(jsm, stream, seqs, concurrency);
}

/** RETENTION_PURGE_EDGE: whether a pass erases the edge of its purges (eraseBeforePurge). */
export type PurgeEdge = 'auto' | 'erase' | 'leave';

/**
 * Whether a pass erases the edge of its purges on a server of `serverVersion`. 'auto' does before
 * NATS 2.11: an erasure took under 1 ms on 2.9.10 and 2.10.27, and the edge 1-3 s a pass. From 2.11
 * on each erasure rewrites the whole 8 MiB block it is in (2.15.1: 10-13 ms, an fsync each), so the
 * edge's 11,900 erasures, paced, took 4 minutes of a pass and wrote about 93 GiB; 'auto' leaves the
 * purged head there to the purge that drops its block, and 'erase' pays for it.
 */
export function erasesPurgeEdge(setting: PurgeEdge, serverVersion: string | undefined): boolean {
  if (setting !== 'auto') return setting === 'erase';
  return erasesCheaply(serverVersion);
}

/** Before NATS 2.11 an erasure overwrites one record (under 1 ms); from 2.11 on it rewrites its 8 MiB block. */
function erasesCheaply(serverVersion: string | undefined): boolean {
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
