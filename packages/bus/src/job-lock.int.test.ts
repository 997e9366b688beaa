import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@parley/log';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { connectBus, type Bus } from './connect.js';
import { acquireJobLock, JobLockHeldError } from './job-lock.js';

const log = createLogger({ service: 'test', level: 'silent' });

describe('acquireJobLock (a retention pass and a backup never overlap)', () => {
  let env: TestEnv;
  let bus: Bus;
  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'job-lock-test', log });
  });
  afterAll(async () => {
    await bus?.nc.close();
    await env?.cleanup();
  });

  it('refuses a second pass at once, and takes the lock again once it is released', async () => {
    const release = await acquireJobLock(bus.nc, env.namespace, 'retention');
    const started = Date.now();
    await expect(acquireJobLock(bus.nc, env.namespace, 'retention')).rejects.toThrow(JobLockHeldError);
    expect(Date.now() - started).toBeLessThan(400);
    await release();
    await (await acquireJobLock(bus.nc, env.namespace, 'retention'))();
  });

  it('makes a pass wait for a running backup, and a backup for a running pass', async () => {
    for (const [first, second] of [['backup', 'retention'], ['retention', 'backup']] as const) {
      const release = await acquireJobLock(bus.nc, env.namespace, first);
      let acquiredAt = 0;
      const waiting = acquireJobLock(bus.nc, env.namespace, second).then((r) => {
        acquiredAt = Date.now();
        return r;
      });
      // Long enough for the waiting job to have found the lock taken (it asks every 0.5 s).
      await new Promise((r) => setTimeout(r, 700));
      const releasedAt = Date.now();
      await release();
      await (await waiting)();
      expect(acquiredAt, `${second} after ${first}`).toBeGreaterThanOrEqual(releasedAt);
    }
  });

  it('gives up after waitMs with who holds it', async () => {
    const release = await acquireJobLock(bus.nc, env.namespace, 'backup');
    try {
      const started = Date.now();
      await expect(acquireJobLock(bus.nc, env.namespace, 'retention', { waitMs: 600 })).rejects.toThrow(/another backup holds the lock/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    } finally {
      await release();
    }
  });
});
