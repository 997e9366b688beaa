import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, readCached, register, startStack, type Account, type Stack } from './stack.js';

/**
 * docs/architecture.md#promises: "Redis is a cache, never the only copy of anything. With Redis down or absent every
 * feature still works from Postgres, a warning is logged, and it recovers by itself when Redis
 * returns." The test runs its own redis-server (the shared one must stay up for the other files),
 * kills it in the middle of traffic and starts it again on the same port.
 */
const REDIS_SERVER = '/usr/bin/redis-server';
/** Per request, during the outage: a correctness bound (no hang, no retry storm), not a benchmark. */
const MAX_REQUEST_MS = 1_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Starts a throw-away redis-server (no persistence) and waits until it answers. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], { stdio: 'ignore' });
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {}); // refused while the server starts
  try {
    await eventually(async () => {
      if (probe.status !== 'ready') await probe.connect().catch(() => probe.disconnect());
      return (await probe.ping()) === 'PONG' ? true : undefined;
    }, 10_000, `redis-server on port ${port}`);
  } finally {
    probe.disconnect();
  }
  return child;
}

async function killRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

async function metricsText(stack: Stack): Promise<string> {
  return (await fetch(`http://127.0.0.1:${stack.metricsPorts.users}/metrics`)).text();
}

/** Sum of cache_requests_total{outcome="error"} over operations, on the users service. */
async function cacheErrors(stack: Stack): Promise<number> {
  const text = await metricsText(stack);
  return [...text.matchAll(/^cache_requests_total\{[^}]*outcome="error"[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

describe('a Redis outage in the middle of traffic', () => {
  let stack: Stack;
  let port: number;
  let server: ChildProcess;
  let client: Redis;
  let ana: Account;
  let bo: Account;
  const key = (suffix: string) => `${stack.env.namespace}:${suffix}`;

  beforeAll(async () => {
    port = await freePort();
    server = await startRedis(port);
    stack = await startStack({ REDIS_URL: `redis://127.0.0.1:${port}` });
    // The test's own view of that Redis; it reconnects by itself after the restart.
    client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 50, retryStrategy: () => 100 });
    client.on('error', () => {});
    [ana, bo] = [await register(stack, 'ro_ana'), await register(stack, 'ro_bo')];
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: ana.accessToken, body: { userId: bo.id } })).status).toBe(201);
  });
  afterAll(async () => {
    client?.disconnect();
    if (server) await killRedis(server);
    await stack?.stop();
  });

  /** The routes under test and what each must answer, whether from Redis or from Postgres. */
  const expectations = () => [
    { path: `/api/v1/users/${bo.id}`, check: (body: any) => body.id === bo.id && body.username === 'ro_bo' && body.email === undefined },
    { path: '/api/v1/users/me', check: (body: any) => body.id === ana.id && body.email === 'ro_ana@example.test' },
    { path: '/api/v1/contacts', check: (body: any) => body.items.length === 1 && body.items[0].id === bo.id && body.nextCursor === null },
  ];

  it('fills the cache under the namespace prefix', async () => {
    for (const { path, check } of expectations()) {
      const answer = await http(stack, 'GET', path, { token: ana.accessToken });
      expect(answer.status, path).toBe(200);
      expect(check(answer.body), path).toBe(true);
    }
    expect(await client.exists(key(`user:${bo.id}`), key(`me:${ana.id}`), key(`contacts:${ana.id}`))).toBe(3);
    // A second read is a hit.
    const hitsBefore = /cache_requests_total\{[^}]*operation="get"[^}]*outcome="hit"[^}]*\} (\d+)/.exec(await metricsText(stack));
    await http(stack, 'GET', `/api/v1/users/${bo.id}`, { token: ana.accessToken });
    const hitsAfter = /cache_requests_total\{[^}]*operation="get"[^}]*outcome="hit"[^}]*\} (\d+)/.exec(await metricsText(stack));
    expect(Number(hitsAfter?.[1])).toBeGreaterThan(Number(hitsBefore?.[1] ?? 0));
  });

  it('answers every route correctly from Postgres while Redis dies, within a bounded delay', async () => {
    const errorsBefore = await cacheErrors(stack);
    const results: { path: string; status: number; ms: number; ok: boolean }[] = [];
    let stop = false;
    // Three clients in a loop; Redis is killed while their requests are in flight.
    const traffic = Promise.all(
      [0, 1, 2].map(async () => {
        while (!stop) {
          for (const { path, check } of expectations()) {
            const started = performance.now();
            const answer = await http(stack, 'GET', path, { token: ana.accessToken });
            results.push({ path, status: answer.status, ms: performance.now() - started, ok: answer.status === 200 && check(answer.body) });
          }
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    const beforeKill = results.length;
    await killRedis(server);
    await new Promise((r) => setTimeout(r, 1_500));
    stop = true;
    await traffic;

    expect(beforeKill).toBeGreaterThan(0);
    expect(results.length - beforeKill).toBeGreaterThan(6);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(results.filter((r) => r.ms >= MAX_REQUEST_MS)).toEqual([]);
    expect(await cacheErrors(stack)).toBeGreaterThan(errorsBefore);

    // Writes work too, and are read back at once (nothing to invalidate, nothing stale).
    const patched = await http(stack, 'PATCH', '/api/v1/users/me', { token: bo.accessToken, body: { bio: 'written while redis is down' } });
    expect(patched.status).toBe(200);
    expect(patched.body.bio).toBe('written while redis is down');
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: ana.accessToken })).body.items[0].bio).toBe('written while redis is down');

    // Ready, with Redis reported down: it is optional (api.md).
    const ready = await fetch(`http://127.0.0.1:${stack.metricsPorts.users}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ checks: { redis: 'down', postgres: 'ok', nats: 'ok' } });
  });

  it('uses the cache again once Redis is back, without a restart of the service', async () => {
    server = await startRedis(port);
    // The new server is empty; a read refills it once the service's client has reconnected.
    await eventually(async () => {
      await http(stack, 'GET', `/api/v1/users/${bo.id}`, { token: ana.accessToken });
      return (await client.exists(key(`user:${bo.id}`))) === 1 ? true : undefined;
    }, 15_000, 'the cache to be used again');
    await http(stack, 'GET', '/api/v1/users/me', { token: ana.accessToken });
    await http(stack, 'GET', '/api/v1/contacts', { token: ana.accessToken });
    expect(await client.exists(key(`me:${ana.id}`), key(`contacts:${ana.id}`))).toBe(2);
    // What was written during the outage is what the refilled cache holds.
    expect((await readCached(client, key(`user:${bo.id}`))).bio).toBe('written while redis is down');
    const ready = await fetch(`http://127.0.0.1:${stack.metricsPorts.users}/readyz`);
    expect(await ready.json()).toMatchObject({ checks: { redis: 'ok' } });
  });
});

describe('invalidation across replicas', () => {
  let stack: Stack;
  let port: number;
  let server: ChildProcess;
  let client: Redis;
  beforeAll(async () => {
    port = await freePort();
    server = await startRedis(port);
    stack = await startStack({ REDIS_URL: `redis://127.0.0.1:${port}` });
    client = new Redis({ port, host: '127.0.0.1' });
  });
  afterAll(async () => {
    client?.disconnect();
    if (server) await killRedis(server);
    await stack?.stop();
  });

  // Every replica reads the same Redis: a change is safe for all of them only if the shared
  // entries are gone (not merely updated in one replica's memory) once the PATCH has answered.
  it('PATCH /users/me deletes both me: and user: so no replica serves the old profile', async () => {
    const [cy, di] = [await register(stack, 'inv_cy'), await register(stack, 'inv_di')];
    const userKey = `${stack.env.namespace}:user:${cy.id}`;
    const meKey = `${stack.env.namespace}:me:${cy.id}`;
    expect((await http(stack, 'GET', `/api/v1/users/${cy.id}`, { token: di.accessToken })).body.displayName).toBe('inv_cy');
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: cy.accessToken })).body.displayName).toBe('inv_cy');
    expect(await client.exists(userKey, meKey)).toBe(2);

    const patched = await http(stack, 'PATCH', '/api/v1/users/me', { token: cy.accessToken, body: { displayName: 'Cy Renamed' } });
    expect(patched.status).toBe(200);
    expect(patched.body.displayName).toBe('Cy Renamed');
    expect(await client.exists(userKey, meKey)).toBe(0);

    expect((await http(stack, 'GET', `/api/v1/users/${cy.id}`, { token: di.accessToken })).body.displayName).toBe('Cy Renamed');
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: cy.accessToken })).body.displayName).toBe('Cy Renamed');
    expect((await readCached(client, userKey)).displayName).toBe('Cy Renamed');
  });

  it('a contact change deletes the owner\'s cached list; a contact\'s profile change shows in it', async () => {
    const [ed, fa] = [await register(stack, 'inv_ed'), await register(stack, 'inv_fa')];
    const listKey = `${stack.env.namespace}:contacts:${ed.id}`;
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: ed.accessToken })).body.items).toEqual([]);
    expect(await readCached(client, listKey)).toEqual([]);
    await http(stack, 'POST', '/api/v1/contacts', { token: ed.accessToken, body: { userId: fa.id } });
    expect(await client.exists(listKey)).toBe(0);
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: ed.accessToken })).body.items.map((u: any) => u.id)).toEqual([fa.id]);
    // Ids only: the profile is not copied into the list.
    expect(await readCached(client, listKey)).toEqual([fa.id]);
    await http(stack, 'PATCH', '/api/v1/users/me', { token: fa.accessToken, body: { bio: 'new bio' } });
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: ed.accessToken })).body.items[0].bio).toBe('new bio');
    await http(stack, 'DELETE', `/api/v1/contacts/${fa.id}`, { token: ed.accessToken });
    expect(await client.exists(listKey)).toBe(0);
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: ed.accessToken })).body.items).toEqual([]);
  });
});
