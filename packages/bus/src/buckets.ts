import { Kvm } from '@nats-io/kv';
import type { BucketDeclaration } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Bus } from './connect.js';

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
      // Kvm.create reads the bucket's info first and creates it only when it is missing.
      await new Kvm(bus.nc).create(decl.bucket, { history: decl.history, replicas: decl.replicas, ...(decl.ttlMs ? { ttl: decl.ttlMs } : {}) });
      const { config } = await bus.jsm.streams.info(stream);
      const wanted = { num_replicas: decl.replicas, max_age: (decl.ttlMs ?? 0) * 1_000_000 };
      const drift = (Object.keys(wanted) as (keyof typeof wanted)[]).filter((k) => config[k] !== wanted[k]);
      if (drift.length === 0) continue;
      await bus.jsm.streams.update(stream, { ...config, ...wanted });
      log.info({ stream, fields: drift }, 'bucket settings updated');
    } catch (error) {
      if (!/permission/i.test((error as Error).message)) throw error;
      log.warn({ stream }, 'cannot create or bring the bucket in line: this NATS authorization was generated before its owner did that (run `npm run secrets` again and reload NATS, docs/operations.md); its writers create it as before');
    }
  }
}
