import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { createLogger } from '@parley/log';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { ensureBuckets } from './buckets.js';
import { connectBus, type Bus } from './connect.js';

const log = createLogger({ service: 'test', level: 'silent' });

describe('ensureBuckets: the owner creates a KV bucket and keeps its settings in line', () => {
  let env: TestEnv;
  let bus: Bus;
  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'buckets', log });
  });
  afterAll(async () => {
    await bus?.nc.close();
    await env?.cleanup();
  });

  it('creates a missing bucket, and gives one made with a shorter age limit (an older release) the declared one, keys kept', async () => {
    const fresh = `${env.namespace}_fresh`;
    await ensureBuckets(bus, [{ bucket: fresh, history: 1, replicas: 1, owner: 'users' }], log);
    expect((await bus.jsm.streams.info(`KV_${fresh}`)).config.max_age).toBe(0);

    const old = `${env.namespace}_old`;
    const kv = await new Kvm(bus.nc).create(old, { ttl: 30_000, history: 1 });
    await kv.put('k', 'v');
    await ensureBuckets(bus, [{ bucket: old, ttlMs: 3_600_000, history: 1, replicas: 1, owner: 'users' }], log);
    const info = await bus.jsm.streams.info(`KV_${old}`);
    expect(info.config.max_age).toBe(3_600_000 * 1_000_000);
    expect(info.state.messages).toBe(1);
    // Nothing to do the second time: no update is sent.
    const updates: unknown[] = [];
    const spy = { ...log, info: (...args: unknown[]) => updates.push(args), warn: (...args: unknown[]) => updates.push(args) } as unknown as typeof log;
    await ensureBuckets(bus, [{ bucket: old, ttlMs: 3_600_000, history: 1, replicas: 1, owner: 'users' }], spy);
    expect(updates).toEqual([]);
    expect((await bus.jsm.streams.info(`KV_${old}`)).config.max_age).toBe(3_600_000 * 1_000_000);
  });
});
