import pg from 'pg';
import { buildMeta, newId } from '@parley/contracts';
import { createTestDatabase } from './env.js';

/** Where an event sits in its stream (as the projector passes it). */
export interface SpecPosition {
  streamSeq: number;
  subject: string;
}

/** What the harness needs of a projection: its SQL, one event at a time and (optionally) in bulk. */
export interface ProjectionUnderSpec<E> {
  apply(event: E, tx: pg.PoolClient, position: SpecPosition): Promise<unknown>;
  applyMany?(items: { event: E; position: SpecPosition }[], tx: pg.PoolClient): Promise<unknown>;
}

export interface ProjectionSpec<E> {
  projection: ProjectionUnderSpec<E>;
  /** The tables the projection owns: the state compared between runs. */
  tables: string[];
  /** The events, in stream order, with their positions. */
  events: { event: E; position: SpecPosition }[];
  /** Rows of other owners the projection reads (written before each run, rolled back after). */
  given?: (tx: pg.PoolClient) => Promise<void>;
}

type Snapshot = Record<string, string[]>;

/**
 * The projection specification (issue 17): against real Postgres, the events applied once one by
 * one are the reference; then, each in its own rolled-back transaction,
 *
 * - every event applied twice in a row,
 * - for every k, all events and then again from the k-th on (JetStream redelivers from the first
 *   unacknowledged event, in order, when a checkpoint is lost),
 * - the bulk path (`applyMany`) over all events at once, in batches of 2 and 3, and redelivered,
 *
 * must leave the owned tables exactly as the reference does, without any checkpoint. Returns
 * what differed (empty when the projection is idempotent and its bulk path equals one by one).
 */
export async function checkProjection<E>(pool: pg.Pool, spec: ProjectionSpec<E>): Promise<string[]> {
  const { projection, events } = spec;
  const oneByOne = async (tx: pg.PoolClient, items: typeof events) => {
    for (const { event, position } of items) await projection.apply(event, tx, position);
  };
  const reference = await run(pool, spec, (tx) => oneByOne(tx, events));
  if (Object.values(reference).every((rows) => rows.length === 0)) return ['the events left every owned table empty: nothing is compared'];

  const trials: [string, (tx: pg.PoolClient) => Promise<void>][] = [
    ['each event applied twice in a row', async (tx) => {
      for (const item of events) await oneByOne(tx, [item, item]);
    }],
  ];
  for (let k = 0; k < events.length; k++) {
    trials.push([`all, then redelivered from event ${k + 1}`, (tx) => oneByOne(tx, [...events, ...events.slice(k)])]);
  }
  const applyMany = projection.applyMany?.bind(projection);
  if (applyMany) {
    const inBatches = (size: number) => async (tx: pg.PoolClient) => {
      for (let i = 0; i < events.length; i += size) await applyMany(events.slice(i, i + size), tx);
    };
    trials.push(['bulk: all at once', (tx) => applyMany(events, tx).then(() => undefined)]);
    trials.push(['bulk: in batches of 2', inBatches(2)]);
    trials.push(['bulk: in batches of 3', inBatches(3)]);
    for (let k = 0; k < events.length; k += 3) {
      trials.push([`bulk: all, then redelivered from event ${k + 1}`, async (tx) => {
        await applyMany(events, tx);
        await applyMany(events.slice(k), tx);
      }]);
    }
  }

  const differences: string[] = [];
  for (const [name, trial] of trials) {
    const got = await run(pool, spec, trial);
    for (const table of spec.tables) {
      const diff = compare(reference[table]!, got[table]!);
      if (diff) differences.push(`${name}: ${table} ${diff}`);
    }
  }
  return differences;
}

/** Runs `fn` in a transaction that is always rolled back: a specification leaves no rows behind. */
export async function rolledBack<T>(pool: pg.Pool, fn: (tx: pg.PoolClient) => Promise<T>): Promise<T> {
  const tx = await pool.connect();
  try {
    await tx.query('BEGIN');
    return await fn(tx);
  } finally {
    await tx.query('ROLLBACK').catch(() => {});
    tx.release();
  }
}

/** Runs one trial in a rolled-back transaction, and returns the owned tables' rows. */
function run<E>(pool: pg.Pool, spec: ProjectionSpec<E>, trial: (tx: pg.PoolClient) => Promise<void>): Promise<Snapshot> {
  return rolledBack(pool, async (tx) => {
    await spec.given?.(tx);
    await trial(tx);
    const snapshot: Snapshot = {};
    for (const table of spec.tables) {
      // Row order is not state: compare the rows as a sorted multiset of their JSON.
      const { rows } = await tx.query<{ row: string }>(`SELECT to_jsonb(t)::text AS row FROM ${table} t`);
      snapshot[table] = rows.map((r) => r.row).sort();
    }
    return snapshot;
  });
}

function compare(expected: string[], got: string[]): string | null {
  const missing = expected.filter((row) => !got.includes(row));
  const extra = got.filter((row) => !expected.includes(row));
  if (missing.length === 0 && extra.length === 0 && expected.length === got.length) return null;
  const show = (rows: string[]) => rows.slice(0, 3).join(' ');
  return `differs: ${missing.length} row(s) missing (${show(missing)}), ${extra.length} extra (${show(extra)}), ${got.length} vs ${expected.length} rows`;
}

/** The time of the n-th fixture event (one second apart, so ordering by time is ordering by n). */
export const fixtureTime = (n: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();

/**
 * Builds stored events for a specification: each gets the next stream sequence, an event id and
 * a time, and must pass the contract's parser (a fixture that is not a valid event throws).
 */
export function fixtureStream() {
  let streamSeq = 0;
  return <E>(parse: (value: unknown) => { ok: true; event: E } | { ok: false; reason: string }, subject: string, event: object) => {
    streamSeq += 1;
    const meta = buildMeta({ eventId: newId(), occurredAt: new Date(fixtureTime(streamSeq)), actorId: null, correlationId: 'spec' });
    const parsed = parse({ version: 1, ...event, meta });
    if (!parsed.ok) throw new Error(`fixture is not a valid event: ${parsed.reason}`);
    return { event: parsed.event, position: { streamSeq, subject } };
  };
}

/**
 * A fresh database for a projection specification, prepared by `migrate` (the service's own
 * migrations), and its cleanup. Only Postgres: a projection is SQL.
 */
export async function projectionDatabase(migrate: (pool: pg.Pool) => Promise<unknown>): Promise<{ pool: pg.Pool; cleanup(): Promise<void> }> {
  const db = await createTestDatabase();
  const pool = new pg.Pool({ connectionString: db.databaseUrl, max: 2 });
  await migrate(pool);
  return {
    pool,
    async cleanup() {
      await pool.end();
      await db.drop();
    },
  };
}
