import { readFileSync } from 'node:fs';
import { connectBus, ensureBuckets, ensureStreams, redactUrl, waitForStreams, whileJetStreamStarts, type Bus } from '@parley/bus';
import { cacheKeyFrom, createCache, type Cache } from '@parley/cache';
import { declaredBuckets, declaredStreams, PRINCIPALS, STREAM_OWNERS, STREAMS_AWAITED, type Principal, type StreamKey } from '@parley/contracts';
import { ConfigError, developmentKeysInUse } from '@parley/config';
import { buildOpsServer } from '@parley/http';
import { createLogger, type Logger } from '@parley/log';
import { createMetrics, startTracing, type Metrics } from '@parley/telemetry';

/** The settings every service's env schema includes (see @parley/config CommonEnv) that the runtime reads. */
export interface RuntimeEnv {
  NATS_URL: string;
  REDIS_URL?: string | undefined;
  REDIS_USERNAME?: string | undefined;
  REDIS_PASSWORD?: string | undefined;
  REDIS_CA_FILE?: string | undefined;
  CACHE_KEY?: string | undefined;
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
  STREAM_REPLICAS: number;
}

/** The clients every service gets. A service with tables gets its pool from @parley/runtime-pg. */
export interface Deps {
  namespace: string;
  log: Logger;
  metrics: Metrics;
  bus: Bus;
  cache: Cache;
}

/** Only users and messages cache anything; the others (gateway, jobs) open no Redis connection. */
const CACHE_USERS: readonly Principal[] = ['users', 'messages'];

function openCache(principal: Principal, env: RuntimeEnv, prefix: string, log: Logger, metrics: Metrics): Cache {
  if (!CACHE_USERS.includes(principal)) return createCache({ url: undefined, prefix, log });
  const url = env.REDIS_URL;
  if (!url) {
    // Said once at start: an operator who meant to set it in .env or compose learns it here (issue 20).
    log.warn('REDIS_URL not set: no cache, every read goes to PostgreSQL');
    return createCache({ url: undefined, prefix, log });
  }
  // Outside a development machine no key stands in (loadEnv): Redis without CACHE_KEY is refused,
  // not silently turned into a plaintext cache.
  if (!env.CACHE_KEY) throw new ConfigError('invalid configuration:\n  CACHE_KEY: required with REDIS_URL (generate one with npm run secrets)');
  if (!env.REDIS_PASSWORD) {
    log.warn('REDIS_PASSWORD not set: Redis is used without authentication (cached values stay sealed with CACHE_KEY)');
  }
  return createCache({
    url,
    ...(env.REDIS_USERNAME ? { username: env.REDIS_USERNAME } : {}),
    password: env.REDIS_PASSWORD,
    ...(env.REDIS_CA_FILE ? { tlsCa: readFileSync(env.REDIS_CA_FILE) } : {}),
    secret: cacheKeyFrom(env.CACHE_KEY),
    prefix,
    log,
    counter: metrics.cacheRequests,
  });
}

export type ReadinessCheck = () => Promise<boolean | null>;

/**
 * What a service opens beyond the shared clients, with them and closed after them: its database
 * (@parley/runtime-pg). This package opens no database itself, so the gateway, which has none,
 * does not depend on one.
 */
export interface Extension<X extends object> {
  /** Merged into the service's deps (its fields are those the service's Deps type adds). */
  deps: X;
  /** Added to `/readyz`. */
  checks: Record<string, ReadinessCheck>;
  close(): Promise<void>;
}

/** What an extension is opened with: what exists before any client. */
export interface ExtensionClients {
  log: Logger;
  metrics: Metrics;
}

export interface Started {
  /** Stops taking new work and finishes what is in flight. */
  stop(): Promise<void>;
}

export interface ServiceSpec<D extends Deps> {
  name: string;
  /** The process's identity on the bus (its NATS user and permissions); defaults to `name`. */
  principal?: Principal;
  env: RuntimeEnv;
  /** Opens what the service needs beyond the shared clients (before NATS); see Extension. */
  extend?: (clients: ExtensionClients) => Promise<Extension<object>>;
  start(deps: D): Promise<Started>;
  /** Extra readiness checks beyond NATS, Redis and the extension's. */
  readiness?: Record<string, ReadinessCheck>;
}

export interface RunningService<D> {
  deps: D;
  metricsPort: number;
  stop(): Promise<void>;
}

export interface OpenedDeps<D> {
  deps: D;
  /** `/readyz` checks of what was opened: NATS, the extension's, Redis. */
  readiness: Record<string, ReadinessCheck>;
  /** Closes every client opened by openDeps. */
  close(): Promise<void>;
  stopTracing: () => Promise<void>;
}

/**
 * Opens what a service needs, without starting it: telemetry, logger, metrics, the extension (the
 * database, created and migrated), NATS (version-checked, streams ensured) and the cache. Used by
 * runService and by one-off commands such as the retention pass and the projection rebuild.
 */
export async function openDeps<D extends Deps = Deps>(spec: Pick<ServiceSpec<D>, 'name' | 'principal' | 'env' | 'extend'>): Promise<OpenedDeps<D>> {
  const { env } = spec;
  const stopTracing = startTracing(spec.name, env.OTEL_EXPORTER_OTLP_ENDPOINT);
  const log = createLogger({ service: spec.name, level: env.LOG_LEVEL });
  const metrics = createMetrics(spec.name);
  const namespace = env.PARLEY_NAMESPACE;
  const principal = spec.principal ?? (spec.name as Principal);
  if (!PRINCIPALS.includes(principal)) throw new Error(`${spec.name} has no identity on the bus: name its principal`);
  const usesCache = CACHE_USERS.includes(principal) && Boolean(env.REDIS_URL);
  const devKeys = developmentKeysInUse(env as unknown as Record<string, unknown>).filter((k) => k !== 'CACHE_KEY' || usesCache);
  if (devKeys.length > 0) {
    log.warn(
      { settings: devKeys },
      `${devKeys.join(' and ')} not set: using the published DEVELOPMENT keys, because this process is local. ` +
        'Anyone can forge tokens and requests with them. Never run like this outside your own machine (npm run secrets makes real ones)',
    );
  }

  const extension = await spec.extend?.({ log, metrics });
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
  const declared = declaredStreams(namespace, retention, env.STREAM_REPLICAS);
  const keys = Object.keys(declared) as StreamKey[];
  // A NATS cluster still electing its JetStream leader answers nothing yet: wait for it (startup.ts).
  await whileJetStreamStarts('creating its streams', () => ensureStreams(bus.jsm, keys.filter((k) => STREAM_OWNERS[k] === principal).map((k) => declared[k]), log), log);
  const buckets = Object.values(declaredBuckets(namespace, env.STREAM_REPLICAS)).filter((b) => b.owner === principal);
  if (buckets.length > 0) await whileJetStreamStarts('creating its buckets', () => ensureBuckets(bus, buckets, log), log);
  await whileJetStreamStarts('waiting for the streams of other services', () => waitForStreams(bus.jsm, (STREAMS_AWAITED[principal] ?? []).map((k) => ({ name: declared[k].name, owner: STREAM_OWNERS[k] })), log), log);
  const cache = openCache(principal, env, namespace, log, metrics);
  const deps = { namespace, log, metrics, bus, cache, ...extension?.deps } as D;
  return {
    deps,
    readiness: {
      nats: async () => !bus.nc.isClosed() && !bus.nc.isDraining(),
      ...extension?.checks,
      redis: () => cache.ping(),
    },
    stopTracing,
    async close() {
      await bus.nc.drain().catch(() => {});
      await extension?.close();
      await cache.close();
    },
  };
}

/**
 * The lifecycle every service shares (centrifugo's run.go, fastify's getting-started): telemetry
 * first, then clients, the extension (schema), streams, the service's own consumers, and the ops
 * endpoints on the metrics port. `stop()` runs the steps backwards under a hard timeout: stop
 * consumers and handlers, drain NATS (in-flight requests finish), close the extension and Redis.
 */
export async function runService<D extends Deps = Deps>(spec: ServiceSpec<D>): Promise<RunningService<D>> {
  const { env } = spec;
  const opened = await openDeps<D>(spec);
  const { deps } = opened;
  const { log, metrics, cache } = deps;
  const started = await spec.start(deps);

  const ops = buildOpsServer({ registry: metrics.registry, checks: { ...opened.readiness, ...spec.readiness } });
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
