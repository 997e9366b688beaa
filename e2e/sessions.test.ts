import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { startGatewayService } from '../services/gateway/src/service.js';
import { http, register, startStack, TestSocket, type Stack } from './stack.js';

describe('session revocation reaches every gateway and every socket', () => {
  let stack: Stack;
  let second: Awaited<ReturnType<typeof startGatewayService>>;
  let other: { baseUrl: string; wsUrl: string };

  beforeAll(async () => {
    stack = await startStack();
    // A second gateway on the same NATS: scale-out without sticky sessions.
    second = await startGatewayService({ ...stack.vars, PORT: '0', METRICS_PORT: '0' });
    other = { baseUrl: `http://127.0.0.1:${second.port}`, wsUrl: `ws://127.0.0.1:${second.port}/ws` };
  });
  afterAll(async () => {
    await second?.stop();
    await stack?.stop();
  });

  it('logout stops the session at once: its tokens fail on both gateways and its sockets close within a second', async () => {
    const a = await register(stack, 'leaver');
    const login = await http(stack, 'POST', '/api/v1/auth/login', { body: { login: 'leaver', password: a.password } });
    const keep = login.body; // a second session of the same user: unaffected
    const here = await TestSocket.open(stack.wsUrl, a.accessToken);
    const there = await TestSocket.open(other.wsUrl, a.accessToken);
    const kept = await TestSocket.open(other.wsUrl, keep.accessToken);
    await Promise.all([here.sync(), there.sync(), kept.sync()]);

    const started = Date.now();
    const out = await http(stack, 'POST', '/api/v1/auth/logout', { token: a.accessToken });
    expect(out.status).toBe(204);
    // The gateway that carried the logout refuses the token on the very next request.
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: a.accessToken })).status).toBe(401);
    expect((await here.waitClosed(1000)).code).toBe(4401);
    expect((await there.waitClosed(1000)).code).toBe(4401);
    expect(Date.now() - started).toBeLessThan(1500);
    await eventually(async () => ((await http(other, 'GET', '/api/v1/users/me', { token: a.accessToken })).status === 401 ? true : undefined), 1000);
    expect((await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: a.refreshToken } })).status).toBe(401);
    await expect(TestSocket.open(stack.wsUrl, a.accessToken)).rejects.toThrow(/401/);

    // The other session lives on.
    await kept.sync();
    expect(kept.closed).toBeNull();
    expect((await http(other, 'GET', '/api/v1/users/me', { token: keep.accessToken })).status).toBe(200);
    kept.close();
  });

  it('a logout whose announcement failed is announced by the next try: the token and socket stop then', async () => {
    const a = await register(stack, 'retrier');
    // One revocation in the stream at least, then the stream refuses more (as NATS down would).
    const spare = await http(stack, 'POST', '/api/v1/auth/login', { body: { login: 'retrier', password: a.password } });
    expect((await http(stack, 'POST', '/api/v1/auth/logout', { token: spare.body.accessToken })).status).toBe(204);
    const nc = await stack.env.connectNats('revocations-full');
    const jsm = await jetstreamManager(nc);
    const name = `${stack.env.namespace}_revocations`;
    const before = await jsm.streams.info(name);
    const socket = await TestSocket.open(stack.wsUrl, a.accessToken);
    try {
      await jsm.streams.update(name, { ...before.config, max_msgs: before.state.messages, discard: DiscardPolicy.New });
      expect((await http(stack, 'POST', '/api/v1/auth/logout', { token: a.accessToken })).status).toBeGreaterThanOrEqual(500);
    } finally {
      await jsm.streams.update(name, before.config);
      await nc.close();
    }
    // The rows were marked revoked by the failed try; before, this try found nothing to announce.
    expect((await http(stack, 'POST', '/api/v1/auth/logout', { token: a.accessToken })).status).toBe(204);
    expect((await socket.waitClosed(2_000)).code).toBe(4401);
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: a.accessToken })).status).toBe(401);
    await eventually(async () => ((await http(other, 'GET', '/api/v1/users/me', { token: a.accessToken })).status === 401 ? true : undefined), 2_000, 'refused on the other gateway');
  });

  it('a gateway started after a logout still refuses the revoked token (revocations are loaded from the stream)', async () => {
    const a = await register(stack, 'latecomer');
    await http(stack, 'POST', '/api/v1/auth/logout', { token: a.accessToken });
    const fresh = await startGatewayService({ ...stack.vars, PORT: '0', METRICS_PORT: '0' });
    try {
      const answer = await http({ baseUrl: `http://127.0.0.1:${fresh.port}` }, 'GET', '/api/v1/users/me', { token: a.accessToken });
      expect(answer.status).toBe(401);
    } finally {
      await fresh.stop();
    }
  });

  it('replaying a rotated refresh token revokes the session everywhere', async () => {
    const a = await register(stack, 'victim');
    const socket = await TestSocket.open(other.wsUrl, a.accessToken);
    await socket.sync();
    const rotated = await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: a.refreshToken } });
    expect(rotated.status).toBe(200);
    const theft = await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: a.refreshToken } });
    expect(theft.status).toBe(401);
    expect((await socket.waitClosed(1000)).code).toBe(4401);
    await eventually(async () => ((await http(stack, 'GET', '/api/v1/users/me', { token: rotated.body.accessToken })).status === 401 ? true : undefined), 1000);
  });

  it('knows a refresh token replayed several rotations later for a stolen one too, and revokes the session', async () => {
    const a = await register(stack, 'oldtheft');
    let current = a.refreshToken;
    for (let i = 0; i < 3; i++) {
      const rotated = await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: current } });
      expect(rotated.status).toBe(200);
      current = rotated.body.refreshToken;
    }
    // Three rotations old: before, refused (401) and nothing more; the session went on.
    expect((await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: a.refreshToken } })).status).toBe(401);
    expect((await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: current } })).status).toBe(401);
    const token = (await http(stack, 'POST', '/api/v1/auth/login', { body: { login: a.username, password: a.password } })).body.accessToken;
    await eventually(async () => ((await http(stack, 'GET', '/api/v1/users/me/audit', { token })).body.items.some((e: { action: string }) => e.action === 'refresh.reused') ? true : undefined), 5_000, 'refresh.reused in the audit log');
    // A made-up secret for the session is only refused: it does not end the session of its owner.
    const b = await register(stack, 'madeup');
    const forged = `${b.refreshToken.split('.')[0]}.${'A'.repeat(43)}`;
    expect((await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: forged } })).status).toBe(401);
    expect((await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: b.refreshToken } })).status).toBe(200);
  });

  it('keeps a readable security log for the user: who, what, when, from where, no secrets', async () => {
    const a = await register(stack, 'audited');
    await http(stack, 'POST', '/api/v1/auth/login', { body: { login: 'audited', password: 'wrong password!' } });
    const login = await http(stack, 'POST', '/api/v1/auth/login', { body: { login: 'audited', password: a.password } });
    await http(stack, 'POST', '/api/v1/auth/logout', { token: a.accessToken });
    const log = await eventually(async () => {
      const page = await http(stack, 'GET', '/api/v1/users/me/audit', { token: login.body.accessToken });
      return page.body.items.length === 4 ? page : undefined;
    });
    expect(log.body.items.map((e: { action: string }) => e.action)).toEqual(['logout', 'login.succeeded', 'login.failed', 'user.registered']);
    for (const entry of log.body.items) {
      expect(entry).toMatchObject({ ip: '127.0.0.1', userAgent: expect.any(String), at: expect.any(String) });
    }
    const text = JSON.stringify(log.body);
    for (const secret of [a.password, a.accessToken, a.refreshToken, a.refreshToken.split('.')[1], login.body.refreshToken]) {
      expect(text).not.toContain(secret);
    }
    const paged = await http(stack, 'GET', '/api/v1/users/me/audit?limit=3', { token: login.body.accessToken });
    expect(paged.body.items).toHaveLength(3);
    const rest = await http(stack, 'GET', `/api/v1/users/me/audit?limit=3&before=${paged.body.nextCursor}`, { token: login.body.accessToken });
    expect(rest.body.items.map((e: { action: string }) => e.action)).toEqual(['user.registered']);
    // Nobody else's entries.
    const b = await register(stack, 'bystander');
    const theirs = await eventually(async () => {
      const page = await http(stack, 'GET', '/api/v1/users/me/audit', { token: b.accessToken });
      return page.body.items.length === 1 ? page : undefined;
    });
    expect(theirs.body.items[0].action).toBe('user.registered');
  });
});

describe('brute-force throttling', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ LOGIN_MAX_FAILURES_PER_ACCOUNT: '3', LOGIN_MAX_FAILURES_PER_ADDRESS: '6', LOGIN_FAILURE_WINDOW_SECONDS: '60' });
  });
  afterAll(async () => stack?.stop());

  const attempt = (login: string, password: string, headers: Record<string, string> = {}) =>
    fetch(`${stack.baseUrl}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ login, password }),
    });

  it('throttles an account from one address after repeated failures with 429 and Retry-After, even for the right password', async () => {
    const a = await register(stack, 'target');
    for (let i = 0; i < 3; i++) expect((await attempt('target', `guess-${i}-wrong`)).status).toBe(401);
    const blocked = await attempt('target', a.password);
    expect(blocked.status).toBe(429);
    const retryAfter = Number(blocked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(await blocked.json()).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
    // An unknown account behaves the same: the throttle reveals nothing about who exists.
    for (let i = 0; i < 3; i++) expect((await attempt('ghost-account', `guess-${i}-wrong`)).status).toBe(401);
    expect((await attempt('ghost-account', 'whatever-password')).status).toBe(429);
  });

  it('throttles a client address across accounts, and ignores a forged X-Forwarded-For', async () => {
    // The six failures above (two accounts) already count against this address. Fresh names, each
    // with a different forged X-Forwarded-For, must not get a fresh budget.
    let status = 0;
    for (let i = 0; i < 6 && status !== 429; i++) {
      status = (await attempt(`spray-${i}`, 'wrong-password', { 'x-forwarded-for': `203.0.113.${i}` })).status;
    }
    expect(status).toBe(429);
    expect((await attempt('spray-new', 'wrong-password', { 'x-forwarded-for': '198.51.100.7' })).status).toBe(429);
  });
});

describe('behind a trusted proxy', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ TRUSTED_PROXIES: 'loopback', LOGIN_MAX_FAILURES_PER_ADDRESS: '2' });
  });
  afterAll(async () => stack?.stop());

  it('takes the client address from X-Forwarded-For and records it in the audit log', async () => {
    const login = (password: string, ip: string) =>
      fetch(`${stack.baseUrl}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
        body: JSON.stringify({ login: 'proxied', password }),
      });
    const a = await register(stack, 'proxied');
    // Two failures from one client address exhaust that address, not the next client's.
    expect((await login('bad-password-1', '198.51.100.1')).status).toBe(401);
    expect((await login('bad-password-2', '198.51.100.1')).status).toBe(401);
    expect((await login(a.password, '198.51.100.1')).status).toBe(429);
    expect((await login(a.password, '198.51.100.2')).status).toBe(200);
    const log = await eventually(async () => {
      const page = await http(stack, 'GET', '/api/v1/users/me/audit', { token: a.accessToken });
      return page.body.items.some((e: { action: string }) => e.action === 'login.succeeded') ? page : undefined;
    });
    const success = log.body.items.find((e: { action: string }) => e.action === 'login.succeeded');
    expect(success.ip).toBe('198.51.100.2');
  });
});
