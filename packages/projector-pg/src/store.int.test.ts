import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { readCheckpoint } from './checkpoint.js';
import { AdvisoryLockLeadership } from './leadership.js';
import { ProjectionStore, type Projection } from './store.js';

interface Noted {
  n: number;
}

const at = (streamSeq: number) => ({ event: { n: streamSeq * 10 }, position: { streamSeq, subject: 's' } });

describe('ProjectionStore and AdvisoryLockLeadership (real Postgres)', () => {
  let env: TestEnv;
  let pool: pg.Pool;

  beforeAll(async () => {
    env = await createTestEnv();
    pool = new pg.Pool({ connectionString: env.databaseUrl });
    await pool.query('CREATE TABLE checkpoints (projector text PRIMARY KEY, stream_seq bigint NOT NULL)');
    await pool.query('CREATE TABLE notes (projector text, n int, PRIMARY KEY (projector, n))');
  });
  afterAll(async () => {
    await pool?.end();
    await env?.cleanup();
  });

  function store(name: string, projection: Partial<Projection<Noted>> = {}) {
    const calls: string[] = [];
    const insert = (tx: pg.PoolClient, n: number) => tx.query('INSERT INTO notes (projector, n) VALUES ($1, $2)', [name, n]);
    const s = new ProjectionStore<Noted>(pool, 'checkpoints', {
      name,
      async apply(event, tx) {
        calls.push(`apply ${event.n}`);
        await insert(tx, event.n);
      },
      async applyMany(items, tx) {
        calls.push(`applyMany ${items.map((i) => i.event.n).join(',')}`);
        for (const { event } of items) await insert(tx, event.n);
      },
      ...projection,
    });
    return { s, calls };
  }
  const notes = async (name: string) => (await pool.query('SELECT n FROM notes WHERE projector = $1 ORDER BY n', [name])).rows.map((r) => r.n);

  it('commits the rows with the checkpoint, and skips events at or below it or repeated in the batch', async () => {
    const { s, calls } = store('skips');
    expect(await s.loadCheckpoint()).toBe(0);
    expect((await s.applyBatch([at(1), at(2)], () => {})).map((i) => i.position.streamSeq)).toEqual([1, 2]);
    expect(await s.loadCheckpoint()).toBe(2);
    // A redelivery of 2 after a crash before its ack, then 3, then 3 again (redelivered while waiting).
    expect((await s.applyBatch([at(2), at(3), at(3)], () => {})).map((i) => i.position.streamSeq)).toEqual([3]);
    expect(await s.applyBatch([at(1)], () => {})).toEqual([]);
    expect(await readCheckpoint(pool, 'checkpoints', 'skips')).toBe(3);
    expect(await notes('skips')).toEqual([10, 20, 30]);
    expect(calls).toEqual(['applyMany 10,20', 'apply 30']);
  });

  it('commits nothing, rows or checkpoint, when an event or the step before COMMIT fails', async () => {
    const { s } = store('atomic', {
      async apply(event, tx) {
        await tx.query('INSERT INTO notes (projector, n) VALUES ($1, $2)', ['atomic', event.n]);
        if (event.n === 20) throw new Error('violates check constraint');
      },
      applyMany: undefined,
    });
    await expect(s.applyBatch([at(1), at(2)], () => {})).rejects.toThrow('violates check constraint');
    await expect(
      s.applyBatch([at(1)], () => {
        throw new Error('killed before COMMIT');
      }),
    ).rejects.toThrow('killed before COMMIT');
    expect(await s.loadCheckpoint()).toBe(0);
    expect(await notes('atomic')).toEqual([]);
    expect(s.isTransient(Object.assign(new Error('terminating connection'), { code: '57P01' }))).toBe(true);
    expect(s.isTransient(new Error('violates check constraint'))).toBe(false);
  });

  it('empties the projection and forgets its checkpoint for a rebuild', async () => {
    const { s } = store('cleared');
    await pool.query('CREATE TABLE cleared_rows (n int)');
    await pool.query('INSERT INTO cleared_rows VALUES (1)');
    await s.applyBatch([at(1)], () => {});
    await s.clear(['cleared_rows']);
    expect(await s.loadCheckpoint()).toBe(0);
    expect((await pool.query('SELECT count(*)::int AS n FROM cleared_rows')).rows[0].n).toBe(0);
  });

  it('gives the lock to one session at a time, and reports a lost session but not a release', async () => {
    const lost: string[] = [];
    const first = await new AdvisoryLockLeadership(env.databaseUrl, 'locked').acquire(() => lost.push('first'));
    expect(first).toBeDefined();
    expect(await new AdvisoryLockLeadership(env.databaseUrl, 'locked').acquire(() => lost.push('standby'))).toBeUndefined();
    await first!.release();
    const second = await new AdvisoryLockLeadership(env.databaseUrl, 'locked').acquire(() => lost.push('second'));
    expect(second).toBeDefined();
    // What a Postgres restart does to the lock session: the server ends it.
    await pool.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', ['projector:locked']);
    await eventually(async () => (lost.length > 0 ? true : undefined));
    expect(lost).toEqual(['second']);
    const third = await new AdvisoryLockLeadership(env.databaseUrl, 'locked').acquire(() => lost.push('third'));
    expect(third).toBeDefined();
    await third!.release();
  });
});
