import pg from 'pg';
import type { Metrics } from '@parley/telemetry';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** Anything that runs a query: the pool, or a client inside a transaction. */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

// Keep Postgres bigint (int8) columns as JS numbers: sequences here stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number.parseInt(v, 10));

export interface PoolOptions {
  connectionString: string;
  max?: number;
  metrics?: Metrics;
  applicationName?: string;
}

/**
 * A pg pool whose every query is counted and timed under the operations guide's metric names.
 * The label is the statement's first keyword, never the SQL or its parameters.
 */
export function createPool(options: PoolOptions): Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName,
    // Fail fast when Postgres is unreachable instead of queueing forever; callers retry.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  const metrics = options.metrics;
  if (metrics) {
    const original = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
    (pool as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = async (...args: unknown[]) => {
      const operation = operationOf(args[0]);
      const end = metrics.databaseQueryDuration.startTimer({ operation });
      try {
        const result = await original(...args);
        metrics.databaseQueries.inc({ operation, outcome: 'ok' });
        return result;
      } catch (error) {
        metrics.databaseQueries.inc({ operation, outcome: 'error' });
        throw error;
      } finally {
        end();
      }
    };
  }
  return pool;
}

function operationOf(query: unknown): string {
  const text = typeof query === 'string' ? query : (query as { text?: string } | undefined)?.text ?? '';
  const word = /^\s*(\w+)/.exec(text)?.[1]?.toLowerCase() ?? 'other';
  return ['select', 'insert', 'update', 'delete', 'with', 'begin', 'commit', 'rollback'].includes(word) ? word : 'other';
}

/** Runs `fn` in a transaction on one client; commits on success, rolls back on any throw. */
export async function withTransaction<T>(pool: Pool, fn: (tx: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/**
 * Database failures that mean "try again later", not "this input is wrong": the one classifier
 * the projector (retry or poison?) and the API edge (503 or 500?) share. SQLSTATE classes 08
 * (connection), 53 (resources), 57 (operator intervention, e.g. a restart), serialization and
 * deadlock failures, a database refusing connections; and the Node socket errors or pg client
 * messages that come without a SQLSTATE.
 */
export function isTransientPgError(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = String(e?.message ?? '');
  // 55P03: a lock wait hit lock_timeout (bounded deletes set one): retry, the lock holder finishes.
  if (/^(08|53|57)/.test(code) || code === '40001' || code === '40P01' || code === '55P03') return true;
  if (/^E(CONNREFUSED|CONNRESET|TIMEDOUT|PIPE)$/.test(code)) return true;
  if (code === '55000') return /not currently accepting connections/i.test(message);
  if (code !== '') return false;
  return /ECONNREFUSED|ECONNRESET|timeout|terminat|Connection/i.test(message);
}
