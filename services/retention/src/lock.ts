import { hostname } from 'node:os';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

/** Longer than any pass should take: a pass that died holding the lock frees it after this. */
const LOCK_TTL_MS = 6 * 3600_000;

export class PassAlreadyRunningError extends Error {
  override name = 'PassAlreadyRunningError';
}

/**
 * One retention pass at a time per namespace, whichever host runs it (a CronJob with
 * `concurrencyPolicy: Forbid` covers Kubernetes, not a manual `npm run cleanup` beside it). The lock
 * is a key created in a NATS KV bucket: creation is atomic, and the bucket's TTL frees the lock of
 * a pass that crashed. Returns the release function.
 */
export async function acquirePassLock(nc: NatsConnection, namespace: string, replicas = 1): Promise<() => Promise<void>> {
  const kv = await new Kvm(nc).create(`${namespace}_retention`, { ttl: LOCK_TTL_MS, history: 1, replicas });
  try {
    await kv.create('pass', JSON.stringify({ host: hostname(), pid: process.pid, startedAt: new Date().toISOString() }));
  } catch (error) {
    const holder = await kv.get('pass').catch(() => null);
    throw new PassAlreadyRunningError(`another retention pass holds the lock${holder ? `: ${holder.string()}` : ''}`, { cause: error });
  }
  return async () => {
    await kv.purge('pass');
  };
}
