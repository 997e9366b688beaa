import pg from 'pg';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
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
 * A pg pool whose every statement, on the pool or inside a transaction, goes through one wrapper
 * (installed on each client as the pool creates it): counted and timed under the operations guide's
 * metric names, labelled by its first keyword and its schema-qualified table (never the SQL text or
 * parameters: bounded cardinality), and, when a trace is active, recorded as a client span
 * following the database semantic conventions, so a trace reaches the Postgres write.
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
  pool.on('connect', (client) => {
    // pg-pool listens for errors only on idle clients. A checked-out client between two statements
    // of a transaction (a projector applying a batch) that loses its connection (Postgres shut
    // down: 57P01) would emit an unhandled 'error' and kill the process; found by the fault suite
    // (e2e/faults/postgres.test.ts). Its next statement fails instead, and the caller retries.
    client.on('error', () => {});
    instrumentClient(client, options.metrics);
  });
  return pool;
}

const tracer = trace.getTracer('parley-pg');

function instrumentClient(client: pg.PoolClient, metrics: Metrics | undefined): void {
  const original = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string } | undefined)?.text ?? '');
    const { operation, table } = statementOf(text);
    const end = metrics?.databaseQueryDuration.startTimer({ operation, table });
    // Only inside a trace: a span per statement of every background job would be noise.
    const span = trace.getActiveSpan()
      ? tracer.startSpan(table === 'none' ? operation : `${operation} ${table}`, {
          kind: SpanKind.CLIENT,
          attributes: { 'db.system.name': 'postgresql', 'db.operation.name': operation, 'db.collection.name': table, 'db.query.text': text },
        })
      : undefined;
    const finish = (error: unknown) => {
      metrics?.databaseQueries.inc({ operation, table, outcome: error ? 'error' : 'ok' });
      if (error) span?.setStatus({ code: SpanStatusCode.ERROR, message: (error as { code?: string }).code ?? 'error' });
      end?.();
      span?.end();
    };
    // pg-pool's own pool.query calls the client with a callback; application code uses promises.
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      return original(...args.slice(0, -1), (error: unknown, result: unknown) => {
        finish(error);
        (last as (e: unknown, r: unknown) => void)(error, result);
      });
    }
    return (original(...args) as Promise<unknown>).then(
      (result) => {
        finish(null);
        return result;
      },
      (error: unknown) => {
        finish(error);
        throw error;
      },
    );
  };
}

const OPERATIONS = new Set(['select', 'insert', 'update', 'delete', 'with', 'begin', 'commit', 'rollback', 'set']);

/** The statement's first keyword and the first schema-qualified Parley table it names. */
export function statementOf(text: string): { operation: string; table: string } {
  const word = /^\s*(\w+)/.exec(text)?.[1]?.toLowerCase() ?? 'other';
  const table = /\b(users|messages)\.([a-z_]+)\b/.exec(text);
  return { operation: OPERATIONS.has(word) ? word : 'other', table: table ? `${table[1]}.${table[2]}` : 'none' };
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
