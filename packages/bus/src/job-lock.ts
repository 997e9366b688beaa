import { hostname } from 'node:os';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { declaredBuckets } from '@parley/contracts';
import { openBucket } from './buckets.js';

/**
 * How long a holder that stopped renewing keeps the lock: a job killed holding it (an OOM-killed
 * CronJob pod) held it for the whole TTL, 6 h, while every retention pass failed on it. Measured on
 * the write time NATS stamps on the key against the waiting job's clock, so hosts' clocks must
 * agree to well within this (NTP does).
 */
const LEASE_MS = 3 * 60_000;
/** How often a job waiting for the other one asks again. */
const RETRY_MS = 500;

/** The jobs that must not overlap: a retention pass's purge removes events a running backup has not read yet. */
export type LockedJob = 'retention' | 'backup';

export class JobLockHeldError extends Error {
  override name = 'JobLockHeldError';
}

/**
 * One retention pass or backup at a time per namespace, whichever host runs it: a key created in
 * the NATS KV bucket `<ns>_retention` (creation is atomic), renewed while the job runs, and taken
 * over by a waiting job once it has not been renewed for a lease (the job that held it died). A backup running beside a pass could read a chat's first events, miss the rest to
 * the pass's purge and the snapshot written after its end, and restore a chat without its
 * structure (the fault suite's jobs scenario did, one run in four). A job finding the other kind
 * holding the lock waits for it up to `waitMs`; a second pass beside a pass fails at once (a
 * CronJob with `concurrencyPolicy: Forbid` covers Kubernetes, not a manual `npm run cleanup`).
 * Returns the release function (calls after the first do nothing).
 */
export async function acquireJobLock(
  nc: NatsConnection,
  namespace: string,
  job: LockedJob,
  options: { replicas?: number; waitMs?: number; leaseMs?: number } = {},
): Promise<() => Promise<void>> {
  const kv = await openBucket(nc, declaredBuckets(namespace, options.replicas ?? 1).jobLock);
  const deadline = Date.now() + (options.waitMs ?? 30 * 60_000);
  const leaseMs = options.leaseMs ?? LEASE_MS;
  // `lease`: this holder renews the key (a waiter may take over once it stops); older holders do not.
  const record = JSON.stringify({ job, host: hostname(), pid: process.pid, startedAt: new Date().toISOString(), lease: true });
  for (;;) {
    let revision: number;
    try {
      revision = await kv.create('pass', record);
    } catch (error) {
      // Only "the key exists" means another job holds it; anything else (a permission, a timeout) is an error.
      if (!wrongRevision(error)) throw error;
      const entry = await kv.get('pass').catch(() => null);
      const holder = entry && entry.operation === 'PUT' ? entry.string() : null;
      // Gone meanwhile (released): try again at once.
      if (holder === null) continue;
      const held = JSON.parse(holder) as { job?: LockedJob; lease?: boolean };
      const holderJob = held.job ?? 'retention';
      if (held.lease && Date.now() - entry!.created.getTime() > leaseMs) {
        // Not renewed for a whole lease: its job is gone. Taken over from exactly the revision
        // read, so of several waiters one wins and the others see the key taken again.
        try {
          revision = await kv.update('pass', record, entry!.revision);
        } catch (takeover) {
          if (wrongRevision(takeover)) continue;
          throw takeover;
        }
      } else {
        if ((job === 'retention' && holderJob === 'retention') || Date.now() > deadline) {
          throw new JobLockHeldError(`another ${holderJob === 'retention' ? 'retention pass' : 'backup'} holds the lock: ${holder}`, { cause: error });
        }
        await new Promise((r) => setTimeout(r, RETRY_MS));
        continue;
      }
    }
    return holdLease(kv, record, revision, leaseMs);
  }
}

/**
 * Renews the key a few times per lease while the job runs, each write only over its own last one;
 * returns the release function. A renewal that finds the key taken over (this process stalled for
 * a whole lease) stops renewing; the release then frees nothing, and neither does a second call.
 */
function holdLease(kv: KV, record: string, acquired: number, leaseMs: number): () => Promise<void> {
  let revision = acquired;
  let held = true;
  let renewing: Promise<void> = Promise.resolve();
  /**
   * The key's revision if it is still this job's record, else null. A write whose answer was lost
   * (a timeout while NATS reconnects, a leader change) was stored all the same: the next write then
   * meets its own revision, not another job's, and must carry on from it.
   */
  const ownRevision = async (): Promise<number | null> => {
    const entry = await kv.get('pass');
    return entry && entry.operation === 'PUT' && entry.string() === record ? entry.revision : null;
  };
  const timer = setInterval(() => {
    renewing = kv.update('pass', record, revision).then(
      (next) => void (revision = next),
      async (error: unknown) => {
        // Anything but a revision conflict (a timeout, NATS restarting): the next tick tries again.
        if (!wrongRevision(error)) return;
        const own = await ownRevision().catch(() => undefined);
        if (own === undefined) return; // not readable now: asked again at the next tick
        if (own === null) clearInterval(timer); // taken over: this job's lease is gone
        else revision = own;
      },
    );
  }, leaseMs / 6);
  timer.unref();
  return async () => {
    if (!held) return;
    held = false;
    clearInterval(timer);
    await renewing;
    const purge = (at: number) => kv.purge('pass', { previousSeq: at });
    await purge(revision).catch(async (error: unknown) => {
      if (!wrongRevision(error)) throw error;
      // Still this job's at a revision whose answer was lost: freed from there. Else another job's now.
      const own = await ownRevision();
      if (own !== null) await purge(own);
    });
  };
}

function wrongRevision(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamWrongLastSequence;
}
