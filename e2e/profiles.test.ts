import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, type Account, type Stack } from './stack.js';

describe('profiles, user search, contacts and export', () => {
  let stack: Stack;
  let ana: Account;
  let bea: Account;
  beforeAll(async () => {
    stack = await startStack({ USER_SEARCH_RATE: '5', USER_SEARCH_WINDOW_SECONDS: '60' });
    [ana, bea] = [await register(stack, 'pf_ana'), await register(stack, 'pf_bea')];
  });
  afterAll(async () => stack?.stop());

  it('updates the own profile, validates it, and every read sees the change at once', async () => {
    expect((await http(stack, 'GET', `/api/v1/users/${ana.id}`, { token: bea.accessToken })).body.displayName).toBe('pf_ana');
    const patched = await http(stack, 'PATCH', '/api/v1/users/me', { token: ana.accessToken, body: { displayName: 'Ana Lima', bio: 'hi', avatarUrl: 'https://img.example/a.png' } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ displayName: 'Ana Lima', bio: 'hi', avatarUrl: 'https://img.example/a.png', email: 'pf_ana@example.test' });
    // The cached public profile was dropped by the projection: no stale read.
    expect((await http(stack, 'GET', `/api/v1/users/${ana.id}`, { token: bea.accessToken })).body.displayName).toBe('Ana Lima');
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: ana.accessToken })).body.bio).toBe('hi');
    const removed = await http(stack, 'PATCH', '/api/v1/users/me', { token: ana.accessToken, body: { avatarUrl: null } });
    expect(removed.body.avatarUrl).toBeNull();
    for (const body of [{}, { email: 'x@y.z' }, { displayName: '' }, { displayName: '   ' }, { displayName: 'x'.repeat(65) }, { avatarUrl: 'javascript:alert(1)' }, { bio: 42 }]) {
      expect((await http(stack, 'PATCH', '/api/v1/users/me', { token: ana.accessToken, body })).status, JSON.stringify(body)).toBe(400);
    }
  });

  it('searches usernames and display names by prefix, without e-mails, paged and rate-limited', async () => {
    const found = await http(stack, 'GET', '/api/v1/users?query=PF_', { token: bea.accessToken });
    expect(found.body.items.map((u: { username: string }) => u.username)).toEqual(['pf_ana', 'pf_bea']);
    expect(JSON.stringify(found.body)).not.toContain('@example.test');
    expect((await http(stack, 'GET', '/api/v1/users?query=ana%20l', { token: bea.accessToken })).body.items.map((u: { id: string }) => u.id)).toEqual([ana.id]);
    const page = await http(stack, 'GET', '/api/v1/users?query=pf&limit=1', { token: bea.accessToken });
    const next = await http(stack, 'GET', `/api/v1/users?query=pf&limit=1&before=${page.body.nextCursor}`, { token: bea.accessToken });
    expect([page.body.items[0].username, next.body.items[0].username]).toEqual(['pf_ana', 'pf_bea']);
    expect((await http(stack, 'GET', '/api/v1/users?query=%25', { token: bea.accessToken })).body.items).toEqual([]);
    const limited = await http(stack, 'GET', '/api/v1/users?query=pf', { token: bea.accessToken });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('adds, lists and removes contacts, with the contact\'s current profile', async () => {
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: bea.accessToken, body: { userId: bea.id } })).status).toBe(400);
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: bea.accessToken, body: { userId: '01900000-0000-7000-8000-000000000000' } })).status).toBe(404);
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: bea.accessToken, body: { userId: ana.id } })).status).toBe(201);
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: bea.accessToken, body: { userId: ana.id } })).status).toBe(200);
    const list = await http(stack, 'GET', '/api/v1/contacts', { token: bea.accessToken });
    expect(list.body.items.map((u: { id: string }) => u.id)).toEqual([ana.id]);
    await http(stack, 'PATCH', '/api/v1/users/me', { token: ana.accessToken, body: { displayName: 'Ana Renamed' } });
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: bea.accessToken })).body.items[0].displayName).toBe('Ana Renamed');
    expect((await http(stack, 'DELETE', `/api/v1/contacts/${ana.id}`, { token: bea.accessToken })).status).toBe(204);
    expect((await http(stack, 'DELETE', `/api/v1/contacts/${ana.id}`, { token: bea.accessToken })).status).toBe(404);
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: bea.accessToken })).body.items).toEqual([]);
  });

  it('exports everything held about the caller and no secret', async () => {
    await http(stack, 'POST', '/api/v1/contacts', { token: ana.accessToken, body: { userId: bea.id } });
    const chat = (await http(stack, 'POST', '/api/v1/chats', { token: ana.accessToken, body: { type: 'direct', userId: bea.id } })).body;
    await http(stack, 'POST', `/api/v1/chats/${chat.id}/messages`, { token: ana.accessToken, body: { clientMsgId: 'e1', body: 'exported words' } });
    const exported = await eventually(async () => {
      const e = await http(stack, 'GET', '/api/v1/users/me/export', { token: ana.accessToken });
      return e.body.messages.length === 1 && e.body.securityLog.length >= 1 ? e : undefined;
    });
    expect(exported.body.profile).toMatchObject({ id: ana.id, email: 'pf_ana@example.test' });
    expect(exported.body.contacts.map((c: { id: string }) => c.id)).toEqual([bea.id]);
    expect(exported.body.chats.map((c: { id: string }) => c.id)).toEqual([chat.id]);
    expect(exported.body.messages[0]).toMatchObject({ chatId: chat.id, body: 'exported words' });
    expect(exported.body.sessions.length).toBeGreaterThan(0);
    const text = JSON.stringify(exported.body);
    for (const secret of ['argon2', ana.password, ana.refreshToken.split('.')[1], ana.accessToken]) expect(text).not.toContain(secret);
    expect(JSON.stringify(exported.body)).not.toContain('pf_bea@example.test');
  });

  it('counts users on the users service', async () => {
    const text = await (await fetch(`http://127.0.0.1:${stack.metricsPorts.users}/metrics`)).text();
    expect(text).toMatch(/users_total\{service="users"\} 2/);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function startRedis(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
}

describe('Redis stops in the middle of traffic, and comes back', () => {
  let stack: Stack;
  let port: number;
  let redis: ChildProcess;
  const others: ChildProcess[] = [];
  beforeAll(async () => {
    port = await freePort();
    redis = startRedis(port);
    const probe = new Redis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: 20 });
    await probe.ping();
    probe.disconnect();
    stack = await startStack({ REDIS_URL: `redis://127.0.0.1:${port}` });
  });
  afterAll(async () => {
    redis?.kill('SIGKILL');
    for (const o of others) o.kill('SIGKILL');
    await stack?.stop();
  });

  const cacheErrors = async () => {
    const text = await (await fetch(`http://127.0.0.1:${stack.metricsPorts.users}/metrics`)).text();
    return [...text.matchAll(/cache_requests_total\{[^}]*outcome="error"[^}]*\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  };

  it('serves every route from Postgres within a bounded delay, stays ready, counts errors, and resumes caching', async () => {
    const [a, b] = [await register(stack, 'ro_a'), await register(stack, 'ro_b')];
    await http(stack, 'POST', '/api/v1/contacts', { token: a.accessToken, body: { userId: b.id } });
    const client = new Redis(`redis://127.0.0.1:${port}`);
    const routes = [`/api/v1/users/${b.id}`, '/api/v1/users/me', '/api/v1/contacts', '/api/v1/chats'];
    for (const route of routes) expect((await http(stack, 'GET', route, { token: a.accessToken })).status).toBe(200);
    expect(await client.exists(`${stack.env.namespace}:user:${b.id}`)).toBe(1);
    client.disconnect();

    redis.kill('SIGKILL');
    const errorsBefore = await cacheErrors();
    for (let round = 0; round < 3; round++) {
      for (const route of routes) {
        const started = Date.now();
        const answer = await http(stack, 'GET', route, { token: a.accessToken });
        expect(answer.status, route).toBe(200);
        // A correctness bound, not a benchmark: the cache's command timeout caps the extra wait.
        expect(Date.now() - started).toBeLessThan(1500);
      }
    }
    const patched = await http(stack, 'PATCH', '/api/v1/users/me', { token: a.accessToken, body: { bio: 'written while redis is down' } });
    expect(patched.status).toBe(200);
    expect(await cacheErrors()).toBeGreaterThan(errorsBefore);
    const ready = await fetch(`http://127.0.0.1:${stack.metricsPorts.users}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as any).checks.redis).toBe('down');

    redis = startRedis(port);
    others.push(redis);
    const back = new Redis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: 50 });
    back.on('error', () => {}); // it connects while the server is still starting
    try {
      await eventually(async () => {
        await http(stack, 'GET', `/api/v1/users/${a.id}`, { token: b.accessToken });
        return (await back.exists(`${stack.env.namespace}:user:${a.id}`)) === 1 ? true : undefined;
      }, 15_000, 'the cache to be used again');
      expect((await http(stack, 'GET', `/api/v1/users/${a.id}`, { token: b.accessToken })).body.bio).toBe('written while redis is down');
    } finally {
      back.disconnect();
    }
  }, 60_000);
});
