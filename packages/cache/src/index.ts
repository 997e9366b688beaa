import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '@parley/log';
import { open, seal } from './seal.js';

export { cacheKeyFrom, open as openSealed, seal } from './seal.js';

/**
 * Redis is a cache, never the only copy of anything (docs/architecture.md#promises). Every operation here degrades to
 * "miss" or "no-op" when Redis is absent, down or slow: callers then read Postgres. A warning is
 * logged once per outage, and ioredis reconnects on its own when Redis returns.
 */
export interface Cache {
  readonly enabled: boolean;
  /** A plain read: the value or undefined (miss or error). Marks nothing, so no fill can follow it. */
  getJson<T>(key: string): Promise<T | undefined>;
  /** Several keys in one round trip; each entry is the value or undefined (miss or error). */
  getManyJson<T>(keys: string[]): Promise<(T | undefined)[]>;
  /**
   * A read-through read: the value, or on a miss a `fill` for what the caller then reads from
   * Postgres. The fill carries this miss's own token and is skipped when `key` was invalidated since
   * this miss (see FILL_GUARD).
   */
  lookup<T>(key: string): Promise<Lookup<T>>;
  /** lookup for several keys in one round trip, in order. */
  lookupMany<T>(keys: string[]): Promise<Lookup<T>[]>;
  del(...keys: string[]): Promise<void>;
  /** del for any number of keys (an expiry can name every user), sent in slices of DEL_SLICE. */
  delMany(keys: readonly string[]): Promise<void>;
  /** True when Redis answers; false when it is configured but unreachable; null when not configured. */
  ping(): Promise<boolean | null>;
  close(): Promise<void>;
}

export interface Lookup<T> {
  /** The cached value; undefined on a miss, an entry that does not open, or an error. */
  value: T | undefined;
  /** Caches `value` for `ttlSeconds` if this lookup missed and nothing invalidated the key since; else a no-op. */
  fill(value: T, ttlSeconds: number): Promise<void>;
}

export interface CacheOptions {
  url: string | undefined;
  /** Redis AUTH password (REDIS_PASSWORD), kept out of the URL so the URL can live in a ConfigMap. */
  password?: string | undefined;
  /** The CA of Redis's TLS certificate (REDIS_CA_FILE), for `rediss://` with a private CA. */
  tlsCa?: Buffer | undefined;
  /** Redis ACL user (REDIS_USERNAME); without it AUTH uses the default user. */
  username?: string | undefined;
  /** CACHE_KEY: seals every value (seal.ts). Required with a URL: the cache never stores plaintext. */
  secret?: Buffer | undefined;
  /** Usually PARLEY_NAMESPACE: two installations sharing one Redis never see each other's keys. */
  prefix: string;
  log: Logger;
  /** How long one command may take before it counts as a miss (ms). */
  commandTimeoutMs?: number;
  /** Counts hits, misses and errors (cache_requests_total); optional so tests can omit it. */
  counter?: { inc(labels: { operation: string; outcome: string }): void };
}

/**
 * FILL_GUARD. A read-through cache has a race: a request reads Postgres (old), the projection
 * commits and invalidates the key, then the request writes what it read: the old value, now cached
 * until its TTL. (Found by e2e/chats.test.ts under load: a chat list missing its newest message.)
 * So every miss adds a random token of its own to the key's fill mark (`<key>#fill`, a set, in the
 * same round trip as the GET), an invalidation deletes the mark along with the key, and a fill
 * writes only while its own miss's token is still in the mark. The token travels in the lookup's
 * `fill`, never through state shared by the process: with one token per key per process, a miss
 * that came before an invalidation could take the token of a miss after it and cache its old read
 * (two concurrent misses of one key, then a delete and a third miss, are enough).
 */
const FILL_MARK_MS = 30_000;
const fillKey = (key: string) => `${key}#fill`;
/** Keys deleted per Redis command (each with its fill mark): an expiry can name every user. */
const DEL_SLICE = 1000;
/**
 * KEYS: n keys then their n fill marks; ARGV: n tokens ('' marks nothing), then the mark's lifetime
 * in ms. A mark left as a string by an older version (one token) is replaced: its fill is skipped.
 */
const GET_AND_MARK = `
local n = #KEYS / 2
local out = {}
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if not v and ARGV[i] ~= '' then
    if redis.call('TYPE', KEYS[n + i]).ok == 'string' then redis.call('DEL', KEYS[n + i]) end
    redis.call('SADD', KEYS[n + i], ARGV[i])
    redis.call('PEXPIRE', KEYS[n + i], ARGV[n + 1])
  end
  out[i] = v
end
return out`;
/** KEYS: key, its fill mark; ARGV: token, value, ttl seconds. Other misses' tokens stay. */
const SET_IF_MARKED = `
if redis.call('TYPE', KEYS[2]).ok == 'set' and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  redis.call('SREM', KEYS[2], ARGV[1])
  return 1
end
return 0`;

/** Failed invalidations remembered for a retry when Redis returns (about 1 MB of keys at most). */
const MAX_DEFERRED_INVALIDATIONS = 10_000;

export function createCache(options: CacheOptions): Cache {
  if (!options.url) return noCache;
  const secret = options.secret;
  if (!secret) throw new Error('a cache needs CACHE_KEY to seal its values');
  const log = options.log;
  const fullKey = (key: string) => `${options.prefix}:${key}`;
  const redis = new Redis(options.url, {
    ...(options.password ? { password: options.password } : {}),
    ...(options.username ? { username: options.username } : {}),
    // rediss:// turns TLS on by itself (with the system's CAs); a private CA is added here.
    ...(options.tlsCa ? { tls: { ca: options.tlsCa } } : {}),
    keyPrefix: `${options.prefix}:`,
    lazyConnect: false,
    // Fail commands at once while disconnected instead of queueing them: a cache that blocks
    // requests during an outage is worse than no cache.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? 250,
    retryStrategy: (attempt) => Math.min(attempt * 200, 5_000),
  });
  redis.defineCommand('parleyGetAndMark', { lua: GET_AND_MARK });
  redis.defineCommand('parleySetIfMarked', { numberOfKeys: 2, lua: SET_IF_MARKED });
  const scripts = redis as unknown as {
    parleyGetAndMark(numberOfKeys: number, ...args: string[]): Promise<(string | null)[]>;
    parleySetIfMarked(key: string, mark: string, token: string, value: string, ttl: number): Promise<number>;
  };
  const getAndMark = (keys: string[], tokens: string[]): Promise<(string | null)[]> =>
    scripts.parleyGetAndMark(keys.length * 2, ...keys, ...keys.map(fillKey), ...tokens, String(FILL_MARK_MS));

  let healthy = true;
  const count = (operation: string, outcome: string) => options.counter?.inc({ operation, outcome });
  const degrade = (error: unknown) => {
    if (healthy) {
      healthy = false;
      log.warn({ err: (error as Error).message }, 'redis unavailable: serving from postgres until it returns');
    }
  };

  // Invalidations that failed during an outage. Redis may come back with its old data (RDB/AOF
  // persistence, or a stall rather than a crash), and then these keys would serve stale entries
  // until their TTL; so they are deleted again as soon as Redis answers. Bounded: past the cap the
  // rest expire by TTL, which is the worst case the TTLs were chosen for anyway.
  const deferred = new Set<string>();
  let deferralWarned = false;
  const defer = (keys: readonly string[]) => {
    let dropped = 0;
    for (const key of keys) {
      if (deferred.size < MAX_DEFERRED_INVALIDATIONS) deferred.add(key);
      else dropped++;
    }
    // Once per outage, like the outage warning itself: not one log line per request.
    if (!deferralWarned) {
      deferralWarned = true;
      log.warn({ keys: keys.length }, 'cache invalidation failed; retried when redis returns');
    }
    if (dropped > 0) log.warn({ dropped }, 'too many deferred cache invalidations; these entries expire by TTL');
  };
  const retryDeferred = () => {
    if (deferred.size === 0) return;
    const keys = [...deferred];
    deferred.clear();
    void (async () => {
      try {
        for (let i = 0; i < keys.length; i += DEL_SLICE) {
          const chunk = keys.slice(i, i + DEL_SLICE);
          await redis.del(...chunk, ...chunk.map(fillKey));
        }
        count('del', 'ok');
        log.info({ keys: keys.length }, 'deferred cache invalidations applied');
      } catch (error) {
        count('del', 'error');
        degrade(error);
        defer(keys);
      }
    })();
  };

  // Called on 'ready' (reconnected) and after any successful command: a stall that ended (timeouts
  // without a disconnect) never emits 'ready', yet it ends the outage just the same.
  const recovered = () => {
    if (healthy && deferred.size === 0) return;
    if (!healthy) log.info('redis reachable again: cache resumed');
    healthy = true;
    deferralWarned = false;
    retryDeferred();
  };
  redis.on('error', degrade);
  redis.on('ready', recovered);
  // Commands that fail before the first connection is up (requests racing the start-up) are not
  // an outage; a Redis that is really unreachable says so through the 'error' event above.
  let everReady = false;
  redis.once('ready', () => {
    everReady = true;
  });
  const commandFailed = (error: unknown) => {
    if (everReady) degrade(error);
  };

  // An entry that does not open was not written by a service holding CACHE_KEY (or was moved to
  // another key, or outlived the TTL it was written with): a miss, and a warning at most every
  // ten minutes, as a planted entry is worth an operator's look but must not flood the log.
  let lastRejectionWarning = 0;
  const unseal = <T>(key: string, raw: string): T | undefined => {
    const value = open<T>(secret, fullKey(key), raw);
    if (value !== undefined) {
      count('get', 'hit');
      return value;
    }
    count('get', 'rejected');
    if (Date.now() - lastRejectionWarning > 600_000) {
      lastRejectionWarning = Date.now();
      log.warn(
        'a cache entry failed its check (not sealed with this CACHE_KEY, moved, or replayed past its TTL): served from postgres instead. ' +
          'Check that every service has the same CACHE_KEY, and who else can write to Redis',
      );
    }
    return undefined;
  };

  /** The fill of one lookup: a no-op without a token (a hit, or Redis failed during the miss). */
  const fillFor =
    <T>(key: string, token: string | null) =>
    async (value: T, ttlSeconds: number): Promise<void> => {
      if (token === null) return; // nothing marked: nothing proves the value fresh
      try {
        const written = await scripts.parleySetIfMarked(key, fillKey(key), token, seal(secret, fullKey(key), value, ttlSeconds), ttlSeconds);
        count('set', written === 1 ? 'ok' : 'skipped');
        recovered();
      } catch (error) {
        count('set', 'error');
        commandFailed(error);
      }
    };

  /** GET (and, with `mark`, a fresh token per key for its fill) in one round trip. */
  const read = async <T>(keys: string[], mark: boolean): Promise<Lookup<T>[]> => {
    if (keys.length === 0) return [];
    const tokens = keys.map(() => (mark ? randomBytes(9).toString('base64url') : ''));
    let raws: (string | null)[];
    try {
      raws = await getAndMark(keys, tokens);
    } catch (error) {
      count('get', 'error');
      commandFailed(error);
      return keys.map((key) => ({ value: undefined, fill: fillFor<T>(key, null) }));
    }
    recovered();
    return raws.map((raw, i) => {
      const key = keys[i]!;
      if (raw !== null) return { value: unseal<T>(key, raw), fill: fillFor<T>(key, null) };
      count('get', 'miss');
      return { value: undefined, fill: fillFor<T>(key, mark ? tokens[i]! : null) };
    });
  };

  const delMany = async (keys: readonly string[]): Promise<void> => {
    for (let i = 0; i < keys.length; i += DEL_SLICE) {
      const slice = keys.slice(i, i + DEL_SLICE);
      try {
        await redis.del(...slice, ...slice.map(fillKey));
        count('del', 'ok');
        recovered();
      } catch (error) {
        count('del', 'error');
        commandFailed(error);
        // This slice and the rest: retried when Redis returns.
        defer(keys.slice(i));
        return;
      }
    }
  };

  return {
    enabled: true,
    async getJson<T>(key: string) {
      return (await read<T>([key], false))[0]!.value;
    },
    async getManyJson<T>(keys: string[]) {
      return (await read<T>(keys, false)).map((entry) => entry.value);
    },
    async lookup<T>(key: string) {
      return (await read<T>([key], true))[0]!;
    },
    lookupMany<T>(keys: string[]) {
      return read<T>(keys, true);
    },
    del: (...keys) => delMany(keys),
    delMany,
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
  getManyJson: async (keys) => keys.map(() => undefined),
  lookup: async () => ({ value: undefined, fill: async () => {} }),
  lookupMany: async (keys) => keys.map(() => ({ value: undefined, fill: async () => {} })),
  del: async () => {},
  delMany: async () => {},
  ping: async () => null,
  close: async () => {},
};
