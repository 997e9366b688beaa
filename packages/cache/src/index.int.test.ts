import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '@parley/log';
import { eventually, serverUrls } from '@parley/testing';
import { createCache, openSealed, seal, type Cache } from './index.js';

const secret = randomBytes(32);

/** A warn-level logger whose lines the test can read. */
function capturingLogger(): { log: Logger; lines: () => Record<string, any>[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return {
    log: createLogger({ service: 'test', level: 'info', destination }),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, any>),
  };
}

const silent = createLogger({ service: 'test', level: 'silent' });

describe('createCache with a reachable Redis', () => {
  const url = serverUrls().redisUrl;
  const prefix = `t${randomBytes(5).toString('hex')}`;
  let cache: Cache;
  let other: Cache;
  let raw: Redis;

  beforeAll(async () => {
    cache = createCache({ url, prefix, log: silent, secret });
    other = createCache({ url, prefix: `${prefix}x`, log: silent, secret });
    raw = new Redis(url, { maxRetriesPerRequest: 1 });
    await raw.ping();
    // The cache fails commands instead of queueing them while it connects (by design): wait until
    // both clients are connected, which under a loaded machine can take a moment.
    await eventually(async () => ((await cache.ping()) && (await other.ping()) ? true : undefined));
  });

  afterAll(async () => {
    for (const p of [prefix, `${prefix}x`]) {
      const keys = await raw.keys(`${p}:*`);
      if (keys.length > 0) await raw.del(...keys);
    }
    await cache?.close();
    await other?.close();
    raw?.disconnect();
  });

  it('is enabled and answers ping', async () => {
    expect(cache.enabled).toBe(true);
    expect(await cache.ping()).toBe(true);
  });

  it('round-trips JSON values and deletes them', async () => {
    const value = { id: 'u-1', name: 'Zoë 😀', tags: ['a', 'b'], nested: { n: 1, nil: null } };
    expect(await cache.getJson('user:u-1')).toBeUndefined();
    await (await cache.lookup('user:u-1')).fill(value, 60);
    expect(await cache.getJson('user:u-1')).toEqual(value);
    await cache.del('user:u-1');
    expect(await cache.getJson('user:u-1')).toBeUndefined();
  });

  it('deletes several keys at once and treats an empty delete as a no-op', async () => {
    await (await cache.lookup('multi:1')).fill(1, 60);
    await (await cache.lookup('multi:2')).fill(2, 60);
    await cache.del('multi:1', 'multi:2');
    expect(await cache.getJson('multi:1')).toBeUndefined();
    expect(await cache.getJson('multi:2')).toBeUndefined();
    await expect(cache.del()).resolves.toBeUndefined();
  });

  it('deletes any number of keys (delMany), past one command\'s slice', async () => {
    const keys = Array.from({ length: 2_500 }, (_, i) => `bulk:${i}`);
    await raw.mset(...keys.flatMap((k) => [`${prefix}:${k}`, '1']));
    await cache.delMany(keys);
    expect(await raw.exists(...keys.map((k) => `${prefix}:${k}`))).toBe(0);
  });

  it('reads several keys in one call, in order, with misses as undefined', async () => {
    await (await cache.lookup('many:1')).fill({ n: 1 }, 60);
    await (await cache.lookup('many:3')).fill({ n: 3 }, 60);
    await raw.set(`${prefix}:many:4`, '{broken', 'EX', 60);
    expect(await cache.getManyJson(['many:1', 'many:2', 'many:3', 'many:4'])).toEqual([{ n: 1 }, undefined, { n: 3 }, undefined]);
    expect(await cache.getManyJson([])).toEqual([]);
    await cache.del('many:1', 'many:3', 'many:4');
  });

  it('stores under `<prefix>:<key>` with the given TTL', async () => {
    await (await cache.lookup('session:s-1')).fill({ userId: 'u-1' }, 120);
    const stored = (await raw.get(`${prefix}:session:s-1`))!;
    // Sealed: what Redis holds says nothing without CACHE_KEY, and opens only under its own name.
    expect(stored).not.toContain('u-1');
    expect(openSealed(secret, `${prefix}:session:s-1`, stored)).toEqual({ userId: 'u-1' });
    expect(openSealed(secret, `${prefix}:session:s-2`, stored)).toBeUndefined();
    expect(openSealed(randomBytes(32), `${prefix}:session:s-1`, stored)).toBeUndefined();
    expect(await raw.exists('session:s-1')).toBe(0);
    const ttl = await raw.ttl(`${prefix}:session:s-1`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(120);
  });

  it('does not cache what was read before an invalidation that came after the miss', async () => {
    // Request reads Postgres (old); the projection commits and invalidates; the request fills.
    const before = await cache.lookup<{ body: string }>('race:1');
    expect(before.value).toBeUndefined();
    await cache.del('race:1');
    await before.fill({ body: 'old' }, 60);
    expect(await cache.getJson('race:1')).toBeUndefined();
    // The next miss fills normally.
    await (await cache.lookup('race:1')).fill({ body: 'new' }, 60);
    expect(await cache.getJson('race:1')).toEqual({ body: 'new' });
  });

  it("does not let a miss before an invalidation fill with a later miss's token", async () => {
    // Two requests of one process miss together; the first fills; the projection invalidates; a
    // third request misses; the second (its read from before the invalidation) fills last but one.
    const first = await cache.lookup<string>('race:2');
    const second = await cache.lookup<string>('race:2');
    await first.fill('a', 60);
    await cache.del('race:2');
    const third = await cache.lookup<string>('race:2');
    expect(third.value).toBeUndefined();
    await second.fill('stale', 60);
    expect(await cache.getJson('race:2')).toBeUndefined();
    // The third's own fill still goes in.
    await third.fill('fresh', 60);
    expect(await cache.getJson('race:2')).toBe('fresh');
  });

  it('a fill after a hit never writes, and a plain read marks nothing', async () => {
    await (await cache.lookup('plain:1')).fill('one', 60);
    const hit = await cache.lookup<string>('plain:1');
    expect(hit.value).toBe('one');
    await cache.del('plain:1');
    await hit.fill('old', 60);
    expect(await cache.getJson('plain:1')).toBeUndefined();
    expect(await raw.exists(`${prefix}:plain:1#fill`)).toBe(0);
    expect(await cache.getJson('plain:2')).toBeUndefined();
    expect(await cache.getManyJson(['plain:2', 'plain:3'])).toEqual([undefined, undefined]);
    expect(await raw.exists(`${prefix}:plain:2#fill`, `${prefix}:plain:3#fill`)).toBe(0);
  });

  it('gives each key of lookupMany its own fill', async () => {
    const [one, two] = await cache.lookupMany<number>(['many:5', 'many:6']);
    await cache.del('many:6');
    await one!.fill(5, 60);
    await two!.fill(6, 60);
    expect(await cache.getManyJson(['many:5', 'many:6'])).toEqual([5, undefined]);
  });

  it('keeps prefixes apart: another installation neither sees nor deletes the keys', async () => {
    await (await cache.lookup('chat:c-1')).fill('mine', 60);
    expect(await other.getJson('chat:c-1')).toBeUndefined();
    await (await other.lookup('chat:c-1')).fill('theirs', 60);
    await other.del('chat:c-1');
    expect(await cache.getJson('chat:c-1')).toBe('mine');
  });
});

describe('createCache with an unreachable Redis', () => {
  const { log, lines } = capturingLogger();
  let cache: Cache;

  beforeAll(() => {
    // Nothing listens on 6399: every command must fail fast instead of queueing.
    cache = createCache({ url: 'redis://127.0.0.1:6399', prefix: 'tdown', log, secret });
  });

  afterAll(async () => {
    await cache?.close();
  });

  it('misses quickly instead of blocking the request', async () => {
    expect(cache.enabled).toBe(true);
    const started = performance.now();
    expect(await cache.getJson('user:u-1')).toBeUndefined();
    expect(await cache.getManyJson(['user:u-1', 'user:u-2'])).toEqual([undefined, undefined]);
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('swallows writes and invalidations', async () => {
    const started = performance.now();
    await expect((await cache.lookup('user:u-1')).fill({ a: 1 }, 60)).resolves.toBeUndefined();
    await expect(cache.del('user:u-1')).resolves.toBeUndefined();
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('reports itself as down', async () => {
    expect(await cache.ping()).toBe(false);
  });

  it('warns once per outage, not once per command', async () => {
    for (let i = 0; i < 5; i++) await cache.getJson(`k${i}`);
    // Let ioredis retry a few times (each retry emits another 'error').
    await new Promise((r) => setTimeout(r, 500));
    const outage = lines().filter((l) => l.msg === 'redis unavailable: serving from postgres until it returns');
    expect(outage).toHaveLength(1);
    expect(outage[0]).toMatchObject({ level: 'warn', service: 'test' });
  });

  it('warns once per outage about failed invalidations, not once per request', async () => {
    for (let i = 0; i < 5; i++) await cache.del(`chat:c-${i}`, `chat:d-${i}`);
    const failed = lines().filter((l) => l.msg === 'cache invalidation failed; retried when redis returns');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 'warn' });
  });
});

const REDIS_SERVER = '/usr/bin/redis-server';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('createCache when Redis comes back', () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill('SIGKILL');
  });

  // A throw-away redis-server started after the cache: only where the binary is installed (the
  // development and CI machines have it), like the nats-server case in packages/bus.
  it.runIf(existsSync(REDIS_SERVER))('recovers by itself and logs that the cache resumed', async () => {
    const port = await freePort();
    const { log, lines } = capturingLogger();
    const cache = createCache({ url: `redis://127.0.0.1:${port}`, prefix: 'tback', log, secret });
    try {
      expect(await cache.getJson('k')).toBeUndefined();
      expect(await cache.ping()).toBe(false);

      child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
        stdio: 'ignore',
      });
      const deadline = Date.now() + 10_000;
      while (!(await cache.ping()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));

      expect(await cache.ping()).toBe(true);
      await (await cache.lookup('k')).fill({ back: true }, 60);
      expect(await cache.getJson('k')).toEqual({ back: true });
      const messages = lines().map((l) => l.msg);
      expect(messages).toContain('redis unavailable: serving from postgres until it returns');
      expect(messages).toContain('redis reachable again: cache resumed');
    } finally {
      await cache.close();
    }
  });
});

describe('createCache over TLS, with a password (issue 23, finding 9)', () => {
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  afterAll(() => {
    child?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // What the production overlay asks of Redis (rediss://, requirepass, a private CA): a private
  // redis-server with a certificate made here by openssl.
  it.runIf(existsSync(REDIS_SERVER))('round-trips over rediss:// with REDIS_CA_FILE and is refused without the password', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'parley-redis-tls-'));
    const at = (f: string) => path.join(dir!, f);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', at('ca.key'), '-out', at('ca.pem'), '-days', '1', '-subj', '/CN=parley-test-ca');
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', at('redis.key'), '-out', at('redis.csr'), '-subj', '/CN=127.0.0.1');
    writeFileSync(at('ext'), 'subjectAltName=IP:127.0.0.1\n');
    ssl('x509', '-req', '-in', at('redis.csr'), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-CAcreateserial', '-out', at('redis.pem'), '-days', '1', '-extfile', at('ext'));
    const port = await freePort();
    const password = randomBytes(12).toString('hex');
    child = spawn(
      REDIS_SERVER,
      ['-', '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', at('redis.pem'), '--tls-key-file', at('redis.key'), '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no'],
      { stdio: ['pipe', 'ignore', 'ignore'] },
    );
    child.stdin!.end(`requirepass ${password}\n`);
    const tlsCa = readFileSync(at('ca.pem'));
    const cache = createCache({ url: `rediss://127.0.0.1:${port}`, password, tlsCa, prefix: 'ttls', log: silent, secret });
    const anonymous = createCache({ url: `rediss://127.0.0.1:${port}`, tlsCa, prefix: 'ttls', log: silent, secret });
    try {
      await eventually(async () => ((await cache.ping()) ? true : undefined), 10_000, 'the TLS cache to connect');
      await (await cache.lookup('k')).fill({ over: 'tls' }, 60);
      expect(await cache.getJson('k')).toEqual({ over: 'tls' });
      expect(await anonymous.ping()).toBe(false);
      expect(await anonymous.getJson('k')).toBeUndefined();
    } finally {
      await cache.close();
      await anonymous.close();
    }
  });
});

describe('createCache and a Redis that returns with its data', () => {
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  afterAll(() => {
    child?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // With persistence (AOF here) a restarted Redis still holds the entries it had: an invalidation
  // that failed during the outage must be applied when it returns, or a stale entry lives on.
  it.runIf(existsSync(REDIS_SERVER))('re-applies invalidations that failed while it was down', async () => {
    const port = await freePort();
    dir = mkdtempSync(path.join(tmpdir(), 'parley-redis-'));
    const start = () =>
      spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir!], {
        stdio: 'ignore',
      });
    child = start();
    const raw = new Redis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: 50 });
    raw.on('error', () => {});
    const cache = createCache({ url: `redis://127.0.0.1:${port}`, prefix: 'tdefer', log: silent, secret });
    try {
      await eventually(async () => ((await cache.ping()) ? true : undefined), 10_000, 'redis to start');
      await (await cache.lookup('user:u-1')).fill({ name: 'old' }, 600);
      await (await cache.lookup('user:u-2')).fill({ name: 'kept' }, 600);
      child.kill('SIGKILL');
      await eventually(async () => ((await cache.ping()) ? undefined : true), 5_000, 'the cache to notice');
      await cache.del('user:u-1');

      child = start();
      // The entry is back from the AOF, and the deferred invalidation removes it once Redis answers.
      await eventually(async () => ((await raw.exists('tdefer:user:u-1')) === 0 ? true : undefined), 10_000, 'the deferred invalidation');
      expect(await cache.getJson('user:u-1')).toBeUndefined();
      // Proof that Redis did come back with its data: the entry nobody invalidated is still there.
      expect(await cache.getJson('user:u-2')).toEqual({ name: 'kept' });
    } finally {
      raw.disconnect();
      await cache.close();
    }
  });
});

describe('createCache and an entry it did not write (issue 23, finding 9)', () => {
  it('serves none of them: planted plaintext, another key\'s value, a value past its TTL, a foreign key\'s seal', async () => {
    const prefix = `tplant${randomBytes(3).toString('hex')}`;
    const counts: Record<string, number> = {};
    const counter = { inc: ({ outcome }: { operation: string; outcome: string }) => void (counts[outcome] = (counts[outcome] ?? 0) + 1) };
    const { log, lines } = capturingLogger();
    const cache = createCache({ url: serverUrls().redisUrl, prefix, log, secret, counter });
    const raw = new Redis(serverUrls().redisUrl);
    try {
      await eventually(async () => ((await cache.ping()) ? true : undefined), 5_000, 'the cache to connect');
      await (await cache.lookup('user:real')).fill({ displayName: 'Real' }, 60);
      const genuine = (await raw.get(`${prefix}:user:real`))!;
      await raw.set(`${prefix}:user:plain`, JSON.stringify({ displayName: 'Planted' }), 'EX', 60);
      await raw.set(`${prefix}:user:moved`, genuine, 'EX', 60);
      await raw.set(`${prefix}:user:stale`, seal(secret, `${prefix}:user:stale`, { displayName: 'Old' }, 60, Date.now() - 61_000), 'EX', 600);
      await raw.set(`${prefix}:user:foreign`, seal(randomBytes(32), `${prefix}:user:foreign`, { displayName: 'Forged' }, 60), 'EX', 60);
      expect(await cache.getJson('user:real')).toEqual({ displayName: 'Real' });
      expect(await cache.getManyJson(['user:plain', 'user:moved', 'user:stale', 'user:foreign', 'user:real'])).toEqual([
        undefined,
        undefined,
        undefined,
        undefined,
        { displayName: 'Real' },
      ]);
      expect(counts.rejected).toBe(4);
      // One warning, not one per entry.
      expect(lines().filter((l) => l.level === 'warn' && /failed its check/.test(l.msg))).toHaveLength(1);
    } finally {
      const keys = await raw.keys(`${prefix}:*`);
      if (keys.length > 0) await raw.del(...keys);
      raw.disconnect();
      await cache.close();
    }
  });

  it('refuses to start without a key: it never stores plaintext', () => {
    expect(() => createCache({ url: serverUrls().redisUrl, prefix: 'tnokey', log: silent, secret: undefined })).toThrow(/CACHE_KEY/);
  });
});

describe('createCache without a URL', () => {
  it('is disabled: misses, no-ops, and ping is null (not configured)', async () => {
    const cache = createCache({ url: undefined, prefix: 'tnone', log: silent, secret });
    expect(cache.enabled).toBe(false);
    await (await cache.lookup('k')).fill(1, 60);
    expect(await cache.getJson('k')).toBeUndefined();
    await expect(cache.del('k')).resolves.toBeUndefined();
    expect(await cache.ping()).toBeNull();
    await expect(cache.close()).resolves.toBeUndefined();
  });

  it('treats an empty URL as not configured', async () => {
    const cache = createCache({ url: '', prefix: 'tnone', log: silent, secret });
    expect(cache.enabled).toBe(false);
    expect(await cache.ping()).toBeNull();
  });
});
