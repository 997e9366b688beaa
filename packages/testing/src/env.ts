import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { newSigningKeyPair } from '@parley/secrets';
import { AuthenticatedNats, natsServerAvailable } from './nats.js';
import { jetstreamManager } from '@nats-io/jetstream';
import { Redis } from 'ioredis';

/** Server addresses for tests: the environment's, or those a global setup started in containers. */
export interface ServerUrls {
  databaseUrl: string;
  natsUrl: string;
  redisUrl: string;
}

export const DEFAULT_URLS: ServerUrls = {
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/postgres',
  natsUrl: 'nats://127.0.0.1:4222',
  redisUrl: 'redis://127.0.0.1:6379',
};

/** What one test file gets: its own database, NATS namespace and Redis key prefix on real servers. */
export interface TestEnv {
  namespace: string;
  databaseUrl: string;
  natsUrl: string;
  redisUrl: string;
  /** Environment variables a service reads, pointing at this test's resources. */
  env: Record<string, string>;
  /** This test's own NATS server with authentication, or null when it runs on a given open one. */
  nats: AuthenticatedNats | null;
  /**
   * For connectBus in a test that drives the bus itself: the admin user (may do anything) on an
   * authenticated server, nothing on an open one.
   */
  busIdentity: { principal: 'backup'; namespace: string; nkeyFile: string } | undefined;
  /** A connection that may do anything (the admin user on an authenticated server). */
  connectNats(name?: string): Promise<NatsConnection>;
  cleanup(): Promise<void>;
}

export function serverUrls(): ServerUrls {
  const fromSetup = process.env.PARLEY_TEST_URLS ? (JSON.parse(process.env.PARLEY_TEST_URLS) as ServerUrls) : undefined;
  return {
    databaseUrl: process.env.DATABASE_URL ?? fromSetup?.databaseUrl ?? DEFAULT_URLS.databaseUrl,
    natsUrl: process.env.NATS_URL ?? fromSetup?.natsUrl ?? DEFAULT_URLS.natsUrl,
    redisUrl: process.env.REDIS_URL ?? fromSetup?.redisUrl ?? DEFAULT_URLS.redisUrl,
  };
}

/**
 * Whether tests run NATS with authentication: on a private nats-server per test file, unless the
 * NATS to use was named (NATS_URL, or containers from the global setup) or there is no nats-server.
 */
export function testsUseAuthenticatedNats(): boolean {
  return natsServerAvailable() && !process.env.NATS_URL && !process.env.PARLEY_TEST_URLS;
}

/** A fresh, empty database `parley_t_<id>` on the test Postgres (for a test that needs only Postgres). */
export async function createTestDatabase(id = randomBytes(5).toString('hex')): Promise<{ databaseUrl: string; drop(): Promise<void> }> {
  const serverUrl = serverUrls().databaseUrl;
  const dbName = `parley_t_${id}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`).finally(() => admin.end());
  const dbUrl = new URL(serverUrl);
  dbUrl.pathname = `/${dbName}`;
  return {
    databaseUrl: dbUrl.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).finally(() => c.end());
    },
  };
}

/**
 * Creates an isolated environment: a fresh database `parley_t_<id>`, namespace `t<id>` (so streams,
 * subjects and Redis keys cannot collide with other files running in parallel), and cleans it all
 * up afterwards (database dropped, streams deleted, keys removed). NATS is a private server of
 * this environment's own with every process signing in as itself (testsUseAuthenticatedNats), so
 * every suite runs with the bus permissions of production.
 */
export async function createTestEnv(options: { shareNatsWith?: TestEnv; ledgersOf?: string[] } = {}): Promise<TestEnv> {
  const id = randomBytes(5).toString('hex');
  const namespace = `t${id}`;
  const urls = serverUrls();
  // `shareNatsWith`: a second installation on the first one's server (restore from one into the other).
  const shared = options.shareNatsWith?.nats ?? null;
  if (shared) await shared.addNamespace(namespace, { ledgersOf: options.ledgersOf ?? [] });
  const nats = shared ?? (testsUseAuthenticatedNats() ? await AuthenticatedNats.start(namespace) : null);
  const natsUrl = nats?.url ?? options.shareNatsWith?.natsUrl ?? urls.natsUrl;
  const signing = nats?.secretsOf(namespace).signing ?? newSigningKeyPair();
  const connectNats = (name = 'test') => (nats ? nats.connectAdmin(name) : connect({ servers: natsUrl, name }));
  const { databaseUrl, drop: dropDatabase } = await createTestDatabase(id);
  return {
    namespace,
    databaseUrl,
    natsUrl,
    redisUrl: urls.redisUrl,
    nats,
    connectNats,
    // The principal only names the reply prefix here: the admin user may subscribe to any.
    busIdentity: nats ? { principal: 'backup', namespace, nkeyFile: nats.adminSeedFile } : undefined,
    env: {
      PARLEY_NAMESPACE: namespace,
      DATABASE_URL: databaseUrl,
      NATS_URL: natsUrl,
      ...(nats ? { NATS_NKEY_DIR: nats.nkeyDir(namespace) } : {}),
      GATEWAY_SIGNING_KEY: signing.seed,
      GATEWAY_PUBLIC_KEY: signing.publicKey,
      REDIS_URL: urls.redisUrl,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      JWT_SECRET: `test-secret-${id}-0123456789abcdefghijklmnopqrstuvwxyz`,
      // Every test registers its users from this one address; the tests of the throttle set their own.
      REGISTER_MAX_PER_ADDRESS: '100000',
    },
    async cleanup() {
      await dropDatabase();
      if (nats && !shared) {
        await nats.destroy(); // its streams go with its folder
      } else {
        const nc = await connectNats('cleanup');
        try {
          const jsm = await jetstreamManager(nc);
          for await (const name of jsm.streams.names()) {
            // KV buckets live in streams named KV_<bucket>.
            if (name.startsWith(`${namespace}_`) || name.startsWith(`KV_${namespace}_`)) await jsm.streams.delete(name);
          }
        } finally {
          await nc.close();
        }
      }
      const redis = new Redis(urls.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 500);
          cursor = next;
          if (keys.length > 0) await redis.del(...keys);
        } while (cursor !== '0');
      } catch {
        // Redis is optional for Parley; a test env without it has nothing to clean.
      } finally {
        redis.disconnect();
      }
    },
  };
}

/** Polls `probe` until it returns a value that is not undefined, or fails after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 5_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
