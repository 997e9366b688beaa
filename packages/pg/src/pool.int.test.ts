import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '@parley/telemetry';
import { serverUrls } from '@parley/testing';
import { dropDatabase, ensureDatabase } from './database.js';
import { createPool, isTransientPgError, withTransaction, type Pool } from './pool.js';

let url: string;
const pools: Pool[] = [];

beforeAll(async () => {
  const target = new URL(serverUrls().databaseUrl);
  target.pathname = `/parley_t_${randomBytes(5).toString('hex')}`;
  url = target.toString();
  await ensureDatabase(url);
});

afterAll(async () => {
  for (const pool of pools) await pool.end();
  if (url) await dropDatabase(url);
});

function pool(metrics?: ReturnType<typeof createMetrics>): Pool {
  const p = createPool({ connectionString: url, max: 2, ...(metrics ? { metrics } : {}) });
  pools.push(p);
  return p;
}

async function counter(metrics: ReturnType<typeof createMetrics>, name: string) {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? []) as { labels: Record<string, string>; value: number }[];
}

describe('createPool', () => {
  it('counts database_queries_total by operation and outcome, never by SQL text', async () => {
    const metrics = createMetrics('test');
    const db = pool(metrics);
    await db.query('CREATE TABLE counted (x int)');
    await db.query('INSERT INTO counted VALUES ($1)', [1]);
    await db.query({ text: 'insert into counted values ($1)', values: [2] });
    await db.query('  SELECT * FROM counted');
    await db.query('UPDATE counted SET x = x + 1');
    await db.query('WITH d AS (SELECT 1) DELETE FROM counted WHERE x = 3');
    await expect(db.query('SELECT * FROM missing_table')).rejects.toMatchObject({ code: '42P01' });

    const values = await counter(metrics, 'database_queries_total');
    const count = (operation: string, outcome: string) =>
      values.find((v) => v.labels.operation === operation && v.labels.outcome === outcome)?.value ?? 0;
    expect(count('other', 'ok')).toBe(1); // CREATE TABLE
    expect(count('insert', 'ok')).toBe(2);
    expect(count('select', 'ok')).toBe(1);
    expect(count('select', 'error')).toBe(1);
    expect(count('update', 'ok')).toBe(1);
    expect(count('with', 'ok')).toBe(1);
    expect(values.every((v) => v.labels.table === 'none')).toBe(true); // no Parley schema named
    expect(values.every((v) => !/counted|missing/.test(JSON.stringify(v.labels)))).toBe(true);

    const text = await metrics.registry.metrics();
    expect(text).toMatch(/database_query_duration_seconds_count\{service="test",operation="insert",table="none"\} 2\n/);
    // Statements inside a transaction (a client checked out of the pool) are counted too.
    await withTransaction(db, async (tx) => {
      await tx.query('INSERT INTO counted VALUES (9)');
    });
    expect((await counter(metrics, 'database_queries_total')).find((v) => v.labels.operation === 'insert')?.value).toBe(3);
  });

  it('returns query results unchanged when metrics are on, with int8 as a number', async () => {
    const db = pool(createMetrics('test'));
    const { rows } = await db.query<{ n: number }>('SELECT 9007199254740::int8 AS n');
    expect(rows).toEqual([{ n: 9007199254740 }]);
  });

  it('counts nothing without metrics and still works', async () => {
    const db = pool();
    const { rows } = await db.query<{ one: number }>('SELECT 1 AS one');
    expect(rows).toEqual([{ one: 1 }]);
  });
});

describe('withTransaction', () => {
  it('commits on success and rolls back on a throw', async () => {
    const db = pool();
    await db.query('CREATE TABLE tx_t (x int)');
    await withTransaction(db, (tx) => tx.query('INSERT INTO tx_t VALUES (1)'));
    await expect(
      withTransaction(db, async (tx) => {
        await tx.query('INSERT INTO tx_t VALUES (2)');
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    const { rows } = await db.query('SELECT x FROM tx_t ORDER BY x');
    expect(rows).toEqual([{ x: 1 }]);
  });
});

describe('isTransientPgError', () => {
  it('tells connection and serialization failures from bad input', () => {
    expect(isTransientPgError({ code: '08006' })).toBe(true);
    expect(isTransientPgError({ code: '57P01' })).toBe(true);
    expect(isTransientPgError({ code: '40001' })).toBe(true);
    expect(isTransientPgError(new Error('connect ECONNREFUSED 127.0.0.1:5432'))).toBe(true);
    expect(isTransientPgError({ code: '23505' })).toBe(false);
    expect(isTransientPgError({ code: '42P01' })).toBe(false);
    expect(isTransientPgError(new Error('invalid input syntax'))).toBe(false);
  });
});
