import { describe, expect, it } from 'vitest';
import { createLogger } from '@parley/log';
import { connectBus } from './connect.js';
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

  /** A second connection, as another host's job: closing it stops its renewals as a kill would. */
  const otherHost = () => connectBus({ url: t.env.natsUrl, identity: t.env.busIdentity, name: 'job-lock-other', log: createLogger({ service: 'test', level: 'silent' }) });

  it('takes over the lock of a job that died holding it once its lease has run out, and not before', async () => {
    for (const [dead, next] of [['backup', 'retention'], ['retention', 'retention']] as const) {
      const other = await otherHost();
      await acquireJobLock(other.nc, t.env.namespace, dead, { leaseMs: 1_500 });
      await other.nc.close();
      // A pass beside a pass fails at once while the lease runs...
      if (next === 'retention' && dead === 'retention') await expect(acquireJobLock(t.bus.nc, t.env.namespace, 'retention', { leaseMs: 1_500 })).rejects.toThrow(JobLockHeldError);
      // ... and once it has run out, the lock is taken over (it stayed for the bucket's 6 h before).
      await new Promise((r) => setTimeout(r, 1_600));
      const started = Date.now();
      const release = await acquireJobLock(t.bus.nc, t.env.namespace, next, { leaseMs: 1_500, waitMs: 5_000 });
      expect(Date.now() - started, `${next} after a dead ${dead}`).toBeLessThan(1_000);
      await release();
    }
  });

  it('keeps the lock of a running job past its lease (renewed), and an old holder\'s release after a takeover frees nothing', async () => {
    const other = await otherHost();
    try {
      const release = await acquireJobLock(other.nc, t.env.namespace, 'backup', { leaseMs: 1_500 });
      // Three leases long, the waiting pass never finds it stale.
      await expect(acquireJobLock(t.bus.nc, t.env.namespace, 'retention', { leaseMs: 1_500, waitMs: 4_500 })).rejects.toThrow(/another backup holds the lock/);
      await release();
      // A holder that went longer without renewing than the waiting job's lease (as a stalled
      // process would: it renews every 10 s here) and then releases: the job that took over keeps
      // the lock.
      const stalled = await acquireJobLock(other.nc, t.env.namespace, 'backup', { leaseMs: 60_000 });
      await new Promise((r) => setTimeout(r, 1_600));
      const next = await acquireJobLock(t.bus.nc, t.env.namespace, 'retention', { leaseMs: 1_500 });
      try {
        await stalled();
        await expect(acquireJobLock(t.bus.nc, t.env.namespace, 'retention')).rejects.toThrow(JobLockHeldError);
      } finally {
        await next();
      }
    } finally {
      if (!other.nc.isClosed()) await other.nc.close();
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
