import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverUrls } from '@parley/testing';
import { dropDatabase, ensureDatabase } from './database.js';
import { migrate } from './migrate.js';
import { createPool, type Pool } from './pool.js';

let url: string;
let pool: Pool;
const folders: string[] = [];

async function migrations(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-migrate-'));
  folders.push(dir);
  for (const [name, sql] of Object.entries(files)) await writeFile(path.join(dir, name), sql);
  return dir;
}

beforeAll(async () => {
  const target = new URL(serverUrls().databaseUrl);
  target.pathname = `/parley_t_${randomBytes(5).toString('hex')}`;
  url = target.toString();
  await ensureDatabase(url);
  pool = createPool({ connectionString: url, max: 4 });
});

afterAll(async () => {
  await pool?.end();
  if (url) await dropDatabase(url);
  for (const dir of folders) await rm(dir, { recursive: true, force: true });
});

describe('migrate', () => {
  it('applies the files in name order, once, and records each one', async () => {
    // Written out of order on purpose: 0002 depends on 0001, 0003 on 0002.
    const dir = await migrations({
      '0003-seed.sql': "INSERT INTO svc_a.items (name) VALUES ('first');",
      '0001-items.sql': 'CREATE TABLE svc_a.items (id serial PRIMARY KEY, name text NOT NULL);',
      '0002-add-flag.sql': 'ALTER TABLE svc_a.items ADD COLUMN flag boolean NOT NULL DEFAULT false;',
      'README.md': 'not a migration',
      '0004_bad-name.sql.bak': 'SELECT 1/0;',
    });

    const applied = await migrate(pool, 'svc_a', dir);
    expect(applied).toEqual(['0001-items.sql', '0002-add-flag.sql', '0003-seed.sql']);

    const recorded = await pool.query<{ name: string }>('SELECT name FROM svc_a.schema_migrations ORDER BY name');
    expect(recorded.rows.map((r) => r.name)).toEqual(applied);
    const items = await pool.query('SELECT name, flag FROM svc_a.items');
    expect(items.rows).toEqual([{ name: 'first', flag: false }]);

    // A second run applies nothing: the seed row is not inserted twice.
    expect(await migrate(pool, 'svc_a', dir)).toEqual([]);
    expect((await pool.query('SELECT count(*)::int AS n FROM svc_a.items')).rows[0]).toEqual({ n: 1 });
  });

  it('applies only the files added since the last run', async () => {
    const files: Record<string, string> = { '0001-t.sql': 'CREATE TABLE svc_b.t (x int);' };
    const dir = await migrations(files);
    expect(await migrate(pool, 'svc_b', dir)).toEqual(['0001-t.sql']);
    await writeFile(path.join(dir, '0002-u.sql'), 'CREATE TABLE svc_b.u (y int);');
    expect(await migrate(pool, 'svc_b', dir)).toEqual(['0002-u.sql']);
    const tables = await pool.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'svc_b' ORDER BY table_name",
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(['schema_migrations', 't', 'u']);
  });

  it('rolls a failing migration back entirely and names the file in the error', async () => {
    const dir = await migrations({
      '0001-ok.sql': 'CREATE TABLE svc_c.ok (x int);',
      // The first statement would succeed on its own; the whole file must roll back.
      '0002-broken.sql': 'CREATE TABLE svc_c.half (x int);\nINSERT INTO svc_c.no_such_table VALUES (1);',
      '0003-never.sql': 'CREATE TABLE svc_c.never (x int);',
    });

    const error = await migrate(pool, 'svc_c', dir).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error!.message).toContain('svc_c/0002-broken.sql');
    expect(error!.message).toContain('no_such_table');
    expect((error!.cause as { code?: string }).code).toBe('42P01');

    const recorded = await pool.query<{ name: string }>('SELECT name FROM svc_c.schema_migrations');
    expect(recorded.rows.map((r) => r.name)).toEqual(['0001-ok.sql']);
    const tables = await pool.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'svc_c' ORDER BY table_name",
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(['ok', 'schema_migrations']);

    // Once the file is fixed, the next run continues from where it stopped.
    await writeFile(path.join(dir, '0002-broken.sql'), 'CREATE TABLE svc_c.half (x int);');
    expect(await migrate(pool, 'svc_c', dir)).toEqual(['0002-broken.sql', '0003-never.sql']);
  });

  it('releases its lock after a failure, so the pool client is reusable', async () => {
    const dir = await migrations({ '0001-bad.sql': 'SELECT * FROM nowhere;' });
    await expect(migrate(pool, 'svc_d', dir)).rejects.toThrow(/svc_d\/0001-bad\.sql/);
    const locks = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    expect(locks.rows[0]!.n).toBe(0);
  });

  it('lets replicas start together: concurrent runs apply each file exactly once', async () => {
    const dir = await migrations({
      '0001-t.sql': 'CREATE TABLE svc_e.t (x int);',
      '0002-seed.sql': 'INSERT INTO svc_e.t VALUES (1);',
    });
    const runs = await Promise.all([migrate(pool, 'svc_e', dir), migrate(pool, 'svc_e', dir), migrate(pool, 'svc_e', dir)]);
    expect(runs.flat().sort()).toEqual(['0001-t.sql', '0002-seed.sql']);
    expect((await pool.query('SELECT count(*)::int AS n FROM svc_e.t')).rows[0]).toEqual({ n: 1 });
  });
});
