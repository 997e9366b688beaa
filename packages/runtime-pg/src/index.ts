/**
 * @parley/runtime for a service that owns tables (users, messages): the same lifecycle, with its
 * database opened among the clients. A separate package so that @parley/runtime, and with it the
 * gateway, does not depend on pg.
 */
import type { ProjectorHooks } from '@parley/bus';
import { createPool, ensureDatabase, migrate, type Pool } from '@parley/pg';
import {
  openDeps as openServiceDeps,
  runService as runServiceWith,
  type Deps as ServiceDeps,
  type Extension,
  type ExtensionClients,
  type OpenedDeps,
  type RunningService,
  type RuntimeEnv,
  type ServiceSpec,
} from '@parley/runtime';

export type { OpenedDeps, RunningService, Started } from '@parley/runtime';

export interface DatabaseEnv extends RuntimeEnv {
  DATABASE_URL: string;
  /** Connections this process may hold (DATABASE_POOL_SIZE). */
  DATABASE_POOL_SIZE?: number;
}

export interface Deps extends ServiceDeps {
  pool: Pool;
  /** For the projectors' leadership sessions (dedicated connections, not from the pool). */
  databaseUrl: string;
}

export interface DatabaseServiceSpec<D extends Deps> extends Omit<ServiceSpec<D>, 'env' | 'extend'> {
  env: DatabaseEnv;
  /** The Postgres schema and migrations folder this service owns. */
  database: { schema: string; migrationsDir: string };
}

/** runService (@parley/runtime) with the service's database: created if missing, migrated, checked as `postgres` by /readyz. */
export function runService<D extends Deps = Deps>(spec: DatabaseServiceSpec<D>): Promise<RunningService<D>> {
  return runServiceWith<D>({ ...spec, extend: withDatabase(spec) });
}

/** openDeps (@parley/runtime) with the service's database, for one-off commands such as the projection rebuild. */
export function openDeps<D extends Deps = Deps>(spec: Pick<DatabaseServiceSpec<D>, 'name' | 'principal' | 'env' | 'database'>): Promise<OpenedDeps<D>> {
  return openServiceDeps<D>({ ...spec, extend: withDatabase(spec) });
}

function withDatabase(spec: Pick<DatabaseServiceSpec<Deps>, 'name' | 'env' | 'database'>) {
  return async ({ log, metrics }: ExtensionClients): Promise<Extension<Pick<Deps, 'pool' | 'databaseUrl'>>> => {
    const databaseUrl = spec.env.DATABASE_URL;
    await ensureDatabase(databaseUrl);
    const pool = createPool({ connectionString: databaseUrl, metrics, applicationName: spec.name, max: spec.env.DATABASE_POOL_SIZE });
    const applied = await migrate(pool, spec.database.schema, spec.database.migrationsDir);
    if (applied.length > 0) log.info({ applied }, 'migrations applied');
    return {
      deps: { pool, databaseUrl },
      checks: { postgres: async () => (await pool.query('SELECT 1')).rowCount === 1 },
      close: () => pool.end(),
    };
  };
}

/**
 * The projector settings every service shares: its clients, the checkpoint table in its schema,
 * the ack wait and linger, and (in crash tests only) fault-injection hooks. Spread into each Projector.
 */
export function projectorBase(
  deps: Deps,
  options: { checkpointTable: string; ackWaitMs: number; lingerMs: number; synchronousCommit: boolean; hooks?: ProjectorHooks | undefined },
) {
  return {
    bus: deps.bus,
    pool: deps.pool,
    databaseUrl: deps.databaseUrl,
    checkpointTable: options.checkpointTable,
    log: deps.log,
    metrics: deps.metrics,
    ackWaitMs: options.ackWaitMs,
    lingerMs: options.lingerMs,
    synchronousCommit: options.synchronousCommit,
    ...(options.hooks ? { hooks: options.hooks } : {}),
  };
}
