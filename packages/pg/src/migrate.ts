import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { Pool } from './pool.js';

/**
 * Forward-only migrations: `NNNN-name.sql` files applied in order, each in its own transaction,
 * recorded in `<schema>.schema_migrations`. Each service owns one Postgres schema (users,
 * messages, ...) so that "no service reads another's tables" is visible in every query.
 * An advisory lock per schema makes concurrent starts of replicas safe.
 */
export async function migrate(pool: Pool, schema: string, directory: string): Promise<string[]> {
  const files = (await readdir(directory)).filter((f) => /^\d{4}-[\w-]+\.sql$/.test(f)).sort();
  const client = await pool.connect();
  const applied: string[] = [];
  const s = pg.escapeIdentifier(schema);
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [`parley.migrate.${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${s}.schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set(
      (await client.query<{ name: string }>(`SELECT name FROM ${s}.schema_migrations`)).rows.map((r) => r.name),
    );
    for (const file of files) {
      if (done.has(file)) continue;
      const sql = await readFile(path.join(directory, file), 'utf8');
      try {
        await client.query('BEGIN');
        await client.query(sql);
        await client.query(`INSERT INTO ${s}.schema_migrations (name) VALUES ($1)`, [file]);
        await client.query('COMMIT');
        applied.push(file);
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw new Error(`migration ${schema}/${file} failed: ${(error as Error).message}`, { cause: error });
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`parley.migrate.${schema}`]).catch(() => {});
    client.release();
  }
  return applied;
}
