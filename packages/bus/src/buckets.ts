import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BucketDeclaration } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Bus } from './connect.js';
import { isNotFound } from './streams.js';

/** A declared bucket's settings, as nats.js takes them. */
function kvOptions(decl: BucketDeclaration): Partial<KvOptions> {
  return { history: decl.history, replicas: decl.replicas, ...(decl.ttlMs ? { ttl: decl.ttlMs } : {}) };
}

/**
 * Opens a declared bucket for its keys' writers, creating it when it is missing (nats.js reads its
 * info first): a writer may start before the bucket's owner on a fresh installation. It never
 * changes an existing bucket; its owner does (ensureBuckets).
 */
export function openBucket(nc: NatsConnection, decl: BucketDeclaration): Promise<KV> {
  return new Kvm(nc).create(decl.bucket, kvOptions(decl));
}

/**
 * Creates each KV bucket, or brings its copies (STREAM_REPLICAS) and age limit in line: run by the
 * bucket's owner at start (declaredBuckets in @parley/contracts). A NATS authorization generated
 * before the owners did this lets them read the bucket but not update it: then a drift is logged
 * with what to do, and the service starts as before.
 */
export async function ensureBuckets(bus: Bus, declarations: BucketDeclaration[], log: Logger): Promise<void> {
  for (const decl of declarations) {
    const stream = `KV_${decl.bucket}`;
    try {
      const info = await bus.jsm.streams.info(stream).catch((error: unknown) => {
        if (isNotFound(error)) return null;
        throw error;
      });
      if (!info) {
        await openBucket(bus.nc, decl);
        continue;
      }
      const wanted = { num_replicas: decl.replicas, max_age: (decl.ttlMs ?? 0) * 1_000_000 };
      const drift = (Object.keys(wanted) as (keyof typeof wanted)[]).filter((k) => info.config[k] !== wanted[k]);
      if (drift.length === 0) continue;
      await bus.jsm.streams.update(stream, { ...info.config, ...wanted });
      log.info({ stream, fields: drift }, 'bucket settings updated');
    } catch (error) {
      if (!/permission/i.test((error as Error).message)) throw error;
      log.warn({ stream }, 'cannot create or bring the bucket in line: this NATS authorization was generated before its owner did that (run `npm run secrets` again and reload NATS, docs/operations.md); its writers create it as before');
    }
  }
}
