import { connectBus, ensureStreams, redactUrl, waitForStreams, type Bus, type ProjectorHooks } from '@parley/bus';
import { createCache, type Cache } from '@parley/cache';
import { declaredStreams, PRINCIPALS, STREAM_OWNERS, STREAMS_AWAITED, type Principal, type StreamKey } from '@parley/contracts';
import { developmentKeysInUse } from '@parley/config';
import { buildOpsServer } from '@parley/http';
import { createLogger, type Logger } from '@parley/log';
import { createPool, ensureDatabase, migrate, type Pool } from '@parley/pg';
import { createMetrics, startTracing, type Metrics } from '@parley/telemetry';

/** The settings every service's env schema includes (see @parley/config CommonEnv). */
export interface RuntimeEnv {
  NATS_URL: string;
  DATABASE_URL: string;
  REDIS_URL?: string | undefined;
  LOG_LEVEL: string;
  PARLEY_NAMESPACE: string;
  NATS_NKEY_FILE?: string | undefined;
  NATS_NKEY_DIR?: string | undefined;
  OTEL_EXPORTER_OTLP_ENDPOINT?: string | undefined;
  SHUTDOWN_TIMEOUT_SECONDS: number;
  METRICS_PORT: number;
  AUDIT_LOG_RETENTION_DAYS: number;
  RESET_TOKEN_RETENTION_DAYS: number;
  READ_RECEIPT_RETENTION_DAYS: number;
}

export interface Deps {
  namespace: string;
  log: Logger;
  metrics: Metrics;
  bus: Bus;
  /** Present when the service owns tables. */
  pool: Pool;
  cache: Cache;
  databaseUrl: string;
}

export interface Started {
  /** Stops taking new work and finishes what is in flight. */
  stop(): Promise<void>;
}

export interface ServiceSpec<D> {
  name: string;
  /** The process's identity on the bus (its NATS user and permissions); defaults to `name`. */
  principal?: Principal;
  env: RuntimeEnv;
  /** The Postgres schema and migrations folder this service owns; omit for services without tables. */
  database?: { schema: string; migrationsDir: string };
  start(deps: D): Promise<Started>;
  /** Extra readiness checks beyond NATS, Postgres and Redis. */
  readiness?: Record<string, () => Promise<boolean | null>>;
}

export interface RunningService<D> {
  deps: D;
  metricsPort: number;
  stop(): Promise<void>;
}

export interface OpenedDeps<D> {
  deps: D;
  /** Closes every client opened by openDeps. */
  close(): Promise<void>;
  stopTracing: () => Promise<void>;
}

/**
 * Opens what a service needs, without starting it: telemetry, logger, metrics, the database
 * (created and migrated), NATS (version-checked, streams ensured) and the cache. Used by
 * runService and by one-off commands such as the projection rebuild.
 */
export async function openDeps<D extends Omit<Deps, 'pool' | 'databaseUrl'>>(
  spec: Pick<ServiceSpec<D>, 'name' | 'principal' | 'env' | 'database'>,
): Promise<OpenedDeps<D>> {
  const { env } = spec;
  const stopTracing = startTracing(spec.name, env.OTEL_EXPORTER_OTLP_ENDPOINT);
  const log = createLogger({ service: spec.name, level: env.LOG_LEVEL });
  const metrics = createMetrics(spec.name);
  const namespace = env.PARLEY_NAMESPACE;
  const principal = spec.principal ?? (spec.name as Principal);
  if (!PRINCIPALS.includes(principal)) throw new Error(`${spec.name} has no identity on the bus: name its principal`);
  const devKeys = developmentKeysInUse(env as unknown as Record<string, unknown>);
  if (devKeys.length > 0) {
    log.warn(
      { settings: devKeys },
      `${devKeys.join(' and ')} not set: using the published DEVELOPMENT keys, because this process is local. ` +
        'Anyone can forge tokens and requests with them. Never run like this outside your own machine (npm run secrets makes real ones)',
    );
  }

  let pool: Pool | undefined;
  if (spec.database) {
    await ensureDatabase(env.DATABASE_URL);
    pool = createPool({ connectionString: env.DATABASE_URL, metrics, applicationName: spec.name });
    const applied = await migrate(pool, spec.database.schema, spec.database.migrationsDir);
    if (applied.length > 0) log.info({ applied }, 'migrations applied');
  }
  const bus = await connectBus({
    url: env.NATS_URL,
    name: spec.name,
    log,
    identity: { principal, namespace, nkeyFile: env.NATS_NKEY_FILE, nkeyDir: env.NATS_NKEY_DIR },
  });
  const retention = {
    auditLogDays: env.AUDIT_LOG_RETENTION_DAYS,
    resetTokenDays: env.RESET_TOKEN_RETENTION_DAYS,
    readReceiptDays: env.READ_RECEIPT_RETENTION_DAYS,
  };
  // Each stream has one owner, which creates it and keeps its settings; the others wait for it.
  const declared = declaredStreams(namespace, retention);
  const keys = Object.keys(declared) as StreamKey[];
  await ensureStreams(bus.jsm, keys.filter((k) => STREAM_OWNERS[k] === principal).map((k) => declared[k]), log);
  await waitForStreams(bus.jsm, (STREAMS_AWAITED[principal] ?? []).map((k) => ({ name: declared[k].name, owner: STREAM_OWNERS[k] })), log);
  const cache = createCache({ url: env.REDIS_URL, prefix: namespace, log, counter: metrics.cacheRequests });
  const deps = { namespace, log, metrics, bus, pool, cache, databaseUrl: env.DATABASE_URL } as unknown as D;
  return {
    deps,
    stopTracing,
    async close() {
      await bus.nc.drain().catch(() => {});
      await pool?.end();
      await cache.close();
    },
  };
}

/**
 * The lifecycle every service shares (centrifugo's run.go, fastify's getting-started): telemetry
 * first, then clients, schema and streams, the service's own consumers, and the ops endpoints on
 * the metrics port. `stop()` runs the steps backwards under a hard timeout: stop consumers and
 * handlers, drain NATS (in-flight requests finish), close Postgres and Redis.
 */
export async function runService<D extends Omit<Deps, 'pool' | 'databaseUrl'>>(spec: ServiceSpec<D>): Promise<RunningService<D>> {
  const { env } = spec;
  const opened = await openDeps<D>(spec);
  const { deps } = opened;
  const { log, metrics, bus, cache } = deps;
  const pool = (deps as Partial<Deps>).pool;
  const started = await spec.start(deps);

  const ops = buildOpsServer({
    registry: metrics.registry,
    checks: {
      nats: async () => !bus.nc.isClosed() && !bus.nc.isDraining(),
      ...(pool ? { postgres: async () => (await pool.query('SELECT 1')).rowCount === 1 } : {}),
      redis: () => cache.ping(),
      ...spec.readiness,
    },
  });
  await ops.listen({ port: env.METRICS_PORT, host: '0.0.0.0' });
  const address = ops.server.address();
  const metricsPort = typeof address === 'object' && address ? address.port : env.METRICS_PORT;
  log.info({ metricsPort, nats: redactUrl(env.NATS_URL), cache: cache.enabled }, `${spec.name} started`);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const timeout = setTimeout(() => {
        log.error('shutdown timed out; exiting');
        process.exit(1);
      }, env.SHUTDOWN_TIMEOUT_SECONDS * 1000);
      timeout.unref();
      try {
        await started.stop();
        await ops.close();
        await opened.close();
        await opened.stopTracing();
        log.info(`${spec.name} stopped`);
      } finally {
        clearTimeout(timeout);
      }
    })());
  return { deps, metricsPort, stop };
}

/** For main.ts: stops the service on SIGINT/SIGTERM and exits. */
export function stopOnSignals(service: { stop(): Promise<void> }, log?: Logger): void {
  const onSignal = (signal: string) => {
    log?.info({ signal }, 'shutting down');
    service.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log?.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

/** For main.ts: a start-up failure is logged readably (config errors, old NATS) and exits non-zero. */
export function exitOnStartupError(service: string) {
  return (error: unknown) => {
    const log = createLogger({ service });
    log.fatal({ err: { message: (error as Error).message, name: (error as Error).name } }, `${service} failed to start`);
    process.exit(1);
  };
}

/**
 * The projector settings every service shares: its clients, the checkpoint table in its schema,
 * the ack wait and linger, and (in crash tests only) fault-injection hooks. Spread into each Projector.
 */
export function projectorBase(
  deps: Deps,
  options: { checkpointTable: string; ackWaitMs: number; lingerMs: number; hooks?: ProjectorHooks | undefined },
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
    ...(options.hooks ? { hooks: options.hooks } : {}),
  };
}
