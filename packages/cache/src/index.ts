import { Redis } from 'ioredis';
import type { Logger } from '@parley/log';

/**
 * Redis is a cache, never the only copy of anything (design.md). Every operation here degrades to
 * "miss" or "no-op" when Redis is absent, down or slow: callers then read Postgres. A warning is
 * logged once per outage, and ioredis reconnects on its own when Redis returns.
 */
export interface Cache {
  readonly enabled: boolean;
  getJson<T>(key: string): Promise<T | undefined>;
  setJson(key: string, value: unknown, ttlSeconds: number): Promise<void>;
  del(...keys: string[]): Promise<void>;
  /** True when Redis answers; false when it is configured but unreachable; null when not configured. */
  ping(): Promise<boolean | null>;
  close(): Promise<void>;
}

export interface CacheOptions {
  url: string | undefined;
  /** Usually PARLEY_NAMESPACE: two installations sharing one Redis never see each other's keys. */
  prefix: string;
  log: Logger;
  /** How long one command may take before it counts as a miss (ms). */
  commandTimeoutMs?: number;
  /** Counts hits, misses and errors (cache_requests_total); optional so tests can omit it. */
  counter?: { inc(labels: { operation: string; outcome: string }): void };
}

export function createCache(options: CacheOptions): Cache {
  if (!options.url) return noCache;
  const log = options.log;
  const redis = new Redis(options.url, {
    keyPrefix: `${options.prefix}:`,
    lazyConnect: false,
    // Fail commands at once while disconnected instead of queueing them: a cache that blocks
    // requests during an outage is worse than no cache.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? 250,
    retryStrategy: (attempt) => Math.min(attempt * 200, 5_000),
  });
  let healthy = true;
  const count = (operation: string, outcome: string) => options.counter?.inc({ operation, outcome });
  const degrade = (error: unknown) => {
    if (healthy) {
      healthy = false;
      log.warn({ err: (error as Error).message }, 'redis unavailable: serving from postgres until it returns');
    }
  };
  redis.on('error', degrade);
  redis.on('ready', () => {
    if (!healthy) log.info('redis reachable again: cache resumed');
    healthy = true;
  });

  return {
    enabled: true,
    async getJson<T>(key: string) {
      try {
        const raw = await redis.get(key);
        count('get', raw === null ? 'miss' : 'hit');
        return raw === null ? undefined : (JSON.parse(raw) as T);
      } catch (error) {
        count('get', 'error');
        degrade(error);
        return undefined;
      }
    },
    async setJson(key, value, ttlSeconds) {
      try {
        await redis.set(key, JSON.stringify(value), 'EX', ttlSeconds);
        count('set', 'ok');
      } catch (error) {
        count('set', 'error');
        degrade(error);
      }
    },
    async del(...keys) {
      if (keys.length === 0) return;
      try {
        await redis.del(...keys);
        count('del', 'ok');
      } catch (error) {
        count('del', 'error');
        // A failed invalidation could leave a stale entry for at most its TTL; log it louder.
        degrade(error);
        log.warn({ keys: keys.length }, 'cache invalidation failed; entries expire by TTL');
      }
    },
    async ping() {
      try {
        return (await redis.ping()) === 'PONG';
      } catch {
        return false;
      }
    },
    async close() {
      redis.disconnect();
    },
  };
}

const noCache: Cache = {
  enabled: false,
  getJson: async () => undefined,
  setJson: async () => {},
  del: async () => {},
  ping: async () => null,
  close: async () => {},
};
