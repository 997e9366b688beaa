import { describe, expect, it } from 'vitest';
import { useTestBus } from './test-bus.js';
import { acquireJobLock, JobLockHeldError } from './job-lock.js';

describe('acquireJobLock (a retention pass and a backup never overlap)', () => {
  const t = useTestBus('job-lock-test');

  it('refuses a second pass at once, and takes the lock again once it is released', async () => {
    const release = await acquireJobLock(t.bus.nc, t.env.namespace, 'retention');
    const started = Date.now();
    await expect(acquireJobLock(t.bus.nc, t.env.namespace, 'retention')).rejects.toThrow(JobLockHeldError);
    expect(Date.now() - started).toBeLessThan(400);
    await release();
    await (await acquireJobLock(t.bus.nc, t.env.namespace, 'retention'))();
  });

  it('a release called twice does not free the lock another job took meanwhile', async () => {
    const release = await acquireJobLock(t.bus.nc, t.env.namespace, 'backup');
    await release();
    const next = await acquireJobLock(t.bus.nc, t.env.namespace, 'retention');
    try {
      await release();
      await expect(acquireJobLock(t.bus.nc, t.env.namespace, 'retention')).rejects.toThrow(JobLockHeldError);
    } finally {
      await next();
    }
  });

  it('makes a pass wait for a running backup, and a backup for a running pass', async () => {
    for (const [first, second] of [['backup', 'retention'], ['retention', 'backup']] as const) {
      const release = await acquireJobLock(t.bus.nc, t.env.namespace, first);
      let acquiredAt = 0;
      const waiting = acquireJobLock(t.bus.nc, t.env.namespace, second).then((r) => {
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
    const release = await acquireJobLock(t.bus.nc, t.env.namespace, 'backup');
    try {
      const started = Date.now();
      await expect(acquireJobLock(t.bus.nc, t.env.namespace, 'retention', { waitMs: 600 })).rejects.toThrow(/another backup holds the lock/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    } finally {
      await release();
    }
  });
});
