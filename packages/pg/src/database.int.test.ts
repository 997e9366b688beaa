import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { serverUrls } from '@parley/testing';
import { dropDatabase, ensureDatabase } from './database.js';

const server = serverUrls().databaseUrl;
const created: string[] = [];

function databaseUrl(): { url: string; name: string } {
  const name = `parley_t_${randomBytes(5).toString('hex')}`;
  const url = new URL(server);
  url.pathname = `/${name}`;
  created.push(url.toString());
  return { url: url.toString(), name };
}

async function exists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  try {
    return (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  } finally {
    await client.end();
  }
}

afterAll(async () => {
  for (const url of created) await dropDatabase(url);
});

describe('ensureDatabase', () => {
  it('creates a missing database that can then be connected to', async () => {
    const { url, name } = databaseUrl();
    expect(await exists(name)).toBe(false);
    await ensureDatabase(url);
    expect(await exists(name)).toBe(true);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
    await client.end();
    expect(rows[0]!.db).toBe(name);
  });

  it('is idempotent: a second run keeps the database and its data', async () => {
    const { url, name } = databaseUrl();
    await ensureDatabase(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)');
    await client.end();

    await expect(ensureDatabase(url)).resolves.toBeUndefined();
    expect(await exists(name)).toBe(true);
    const again = new pg.Client({ connectionString: url });
    await again.connect();
    const { rows } = await again.query<{ x: number }>('SELECT x FROM kept');
    await again.end();
    expect(rows).toEqual([{ x: 42 }]);
  });

  it('is safe when several services create the same database at once', async () => {
    const { url, name } = databaseUrl();
    const results = await Promise.allSettled([ensureDatabase(url), ensureDatabase(url), ensureDatabase(url)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(await exists(name)).toBe(true);
  });

  it('handles a database name that needs quoting', async () => {
    const name = `parley_t_${randomBytes(3).toString('hex')}-Mixed Case`;
    const url = new URL(server);
    url.pathname = `/${encodeURIComponent(name)}`;
    created.push(url.toString());
    await ensureDatabase(url.toString());
    expect(await exists(name)).toBe(true);
  });

  it('refuses a URL that names no database', async () => {
    const url = new URL(server);
    url.pathname = '/';
    await expect(ensureDatabase(url.toString())).rejects.toThrow('DATABASE_URL names no database');
  });
});

describe('dropDatabase', () => {
  it('drops a database even while a client is connected to it', async () => {
    const { url, name } = databaseUrl();
    await ensureDatabase(url);
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => {});
    await client.connect();
    await dropDatabase(url);
    expect(await exists(name)).toBe(false);
    await client.end().catch(() => {});
    // Dropping a database that is already gone is not an error.
    await expect(dropDatabase(url)).resolves.toBeUndefined();
  });
});
