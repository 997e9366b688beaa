import { hostname } from 'node:os';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

/** Longer than any pass or backup should take: a job that died holding the lock frees it after this. */
const LOCK_TTL_MS = 6 * 3600_000;
/** How often a job waiting for the other one asks again. */
const RETRY_MS = 500;

/** The jobs that must not overlap: a retention pass's purge removes events a running backup has not read yet. */
export type LockedJob = 'retention' | 'backup';

export class JobLockHeldError extends Error {
  override name = 'JobLockHeldError';
}

/**
 * One retention pass or backup at a time per namespace, whichever host runs it: a key created in
 * the NATS KV bucket `<ns>_retention` (creation is atomic; the bucket's TTL frees the lock of a job
 * that crashed). A backup running beside a pass could read a chat's first events, miss the rest to
 * the pass's purge and the snapshot written after its end, and restore a chat without its
 * structure (the fault suite's jobs scenario did, one run in four). A job finding the other kind
 * holding the lock waits for it up to `waitMs`; a second pass beside a pass fails at once (a
 * CronJob with `concurrencyPolicy: Forbid` covers Kubernetes, not a manual `npm run cleanup`).
 * Returns the release function (calls after the first do nothing).
 */
export async function acquireJobLock(nc: NatsConnection, namespace: string, job: LockedJob, options: { replicas?: number; waitMs?: number } = {}): Promise<() => Promise<void>> {
  const kv = await new Kvm(nc).create(`${namespace}_retention`, { ttl: LOCK_TTL_MS, history: 1, replicas: options.replicas ?? 1 });
  const deadline = Date.now() + (options.waitMs ?? 30 * 60_000);
  for (;;) {
    try {
      await kv.create('pass', JSON.stringify({ job, host: hostname(), pid: process.pid, startedAt: new Date().toISOString() }));
      // Once only: a second call after another job took the key would free that job's lock.
      let held = true;
      return async () => {
        if (!held) return;
        held = false;
        await kv.purge('pass');
      };
    } catch (error) {
      // Only "the key exists" means another job holds it; anything else (a permission, a timeout) is an error.
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamWrongLastSequence)) throw error;
      const entry = await kv.get('pass').catch(() => null);
      const holder = entry && entry.operation === 'PUT' ? entry.string() : null;
      // Gone meanwhile (released): try again at once.
      if (holder === null) continue;
      const holderJob = (JSON.parse(holder) as { job?: LockedJob }).job ?? 'retention';
      if ((job === 'retention' && holderJob === 'retention') || Date.now() > deadline) {
        throw new JobLockHeldError(`another ${holderJob === 'retention' ? 'retention pass' : 'backup'} holds the lock: ${holder}`, { cause: error });
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }
}
