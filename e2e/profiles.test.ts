import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, type Account, type Stack } from './stack.js';

/** Searches allowed per caller in this file's (60 s) window. */
const SEARCH_RATE = 10;

describe('profiles, user search, contacts and export', () => {
  let stack: Stack;
  let ana: Account;
  let bea: Account;
  let eve: Account;
  beforeAll(async () => {
    stack = await startStack({ USER_SEARCH_RATE: String(SEARCH_RATE), USER_SEARCH_WINDOW_SECONDS: '60' });
    // pfxeve: a name that `pf_` would match if the underscore were a LIKE wildcard.
    [ana, bea, eve] = [await register(stack, 'pf_ana'), await register(stack, 'pf_bea'), await register(stack, 'pfxeve')];
  });
  afterAll(async () => stack?.stop());

  it('updates the own profile, validates it, and every read sees the change at once', async () => {
    expect((await http(stack, 'GET', `/api/v1/users/${ana.id}`, { token: bea.accessToken })).body.displayName).toBe('pf_ana');
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: ana.accessToken })).body.email).toBe('pf_ana@example.test');
    const patched = await http(stack, 'PATCH', '/api/v1/users/me', { token: ana.accessToken, body: { displayName: 'Ana Lima', bio: 'hi', avatarUrl: 'https://img.example/a.png' } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ displayName: 'Ana Lima', bio: 'hi', avatarUrl: 'https://img.example/a.png', email: 'pf_ana@example.test' });
    // The cached public profile was dropped by the projection: no stale read.
    expect((await http(stack, 'GET', `/api/v1/users/${ana.id}`, { token: bea.accessToken })).body.displayName).toBe('Ana Lima');
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: ana.accessToken })).body.bio).toBe('hi');
    const removed = await http(stack, 'PATCH', '/api/v1/users/me', { token: ana.accessToken, body: { avatarUrl: null } });
    expect(removed.body.avatarUrl).toBeNull();
    const invalid = [
      {},
      { email: 'x@y.z' },
      { displayName: 'ok', admin: true },
      { displayName: '' },
      { displayName: '   ' },
      { displayName: 'x'.repeat(65) },
      { bio: 'b'.repeat(501) },
      { bio: 42 },
      { avatarUrl: 'javascript:alert(1)' },
      { avatarUrl: 'ftp://files.example/a.png' },
      { avatarUrl: 'not a url' },
      { avatarUrl: `https://img.example/${'a'.repeat(2040)}` },
    ];
    for (const body of invalid) {
      const answer = await http(stack, 'PATCH', '/api/v1/users/me', { token: ana.accessToken, body });
      expect(answer.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(answer.body.error.code).toBe('invalid_request');
    }
    // Bad input changed nothing.
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: ana.accessToken })).body).toMatchObject({ displayName: 'Ana Lima', bio: 'hi', avatarUrl: null });
    // The limits themselves are accepted; the name is stored trimmed.
    const edge = await http(stack, 'PATCH', '/api/v1/users/me', { token: ana.accessToken, body: { displayName: `  ${'n'.repeat(60)}  `, bio: 'b'.repeat(500) } });
    expect(edge.status).toBe(200);
    expect(edge.body.displayName).toBe('n'.repeat(60));
    await http(stack, 'PATCH', '/api/v1/users/me', { token: ana.accessToken, body: { displayName: 'Ana Lima', bio: 'hi' } });
  });

  it('searches usernames and display names by prefix, case-insensitively, without e-mails, paged and rate-limited', async () => {
    let searches = 0;
    const search = async (qs: string, token = bea.accessToken) => {
      searches++;
      return http(stack, 'GET', `/api/v1/users?${qs}`, { token });
    };
    const names = (answer: { body: { items: { username: string }[] } }) => answer.body.items.map((u) => u.username);

    // `_` is a literal character (escaped for LIKE): pfxeve does not match `pf_`.
    const found = await search('query=PF_');
    expect(found.status).toBe(200);
    expect(names(found)).toEqual(['pf_ana', 'pf_bea']);
    expect(found.body.nextCursor).toBeNull();
    expect(Object.keys(found.body.items[0]).sort()).toEqual(['avatarUrl', 'bio', 'createdAt', 'displayName', 'id', 'username']);
    expect(JSON.stringify(found.body)).not.toContain('@example.test');
    // Display names match too (Ana's is "Ana Lima"), case-insensitively.
    expect(names(await search('query=aNA%20l'))).toEqual(['pf_ana']);
    // A prefix, not a substring.
    expect(names(await search('query=ana_'))).toEqual([]);
    expect((await search('query=%25')).body.items).toEqual([]);

    // Keyset pages in username order.
    const first = await search('query=pf&limit=2');
    expect(names(first)).toEqual(['pf_ana', 'pf_bea']);
    const second = await search(`query=pf&limit=2&before=${first.body.nextCursor}`);
    expect(names(second)).toEqual(['pfxeve']);
    expect(second.body.nextCursor).toBeNull();

    for (const bad of ['query=', 'query=' + 'q'.repeat(65), 'query=pf&limit=0', 'query=pf&limit=201', 'query=pf&before=garbage', 'query=pf&extra=1', '']) {
      const answer = await search(bad);
      expect(answer.status, bad).toBe(400);
      expect(answer.body.error.code).toBe('invalid_request');
    }

    // A fresh caller's bucket holds SEARCH_RATE searches; the next one is refused.
    const before = searches;
    while (searches - before < SEARCH_RATE) {
      const answer = await search('query=pf', eve.accessToken);
      expect(answer.status).toBe(200);
    }
    const limited = await search('query=pf', eve.accessToken);
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    // Per caller: Ana still has her whole budget.
    expect((await search('query=pf', ana.accessToken)).status).toBe(200);
  });

  it('adds, lists (paged) and removes contacts, with the contact\'s current profile', async () => {
    const add = (userId: string) => http(stack, 'POST', '/api/v1/contacts', { token: bea.accessToken, body: { userId } });
    const self = await add(bea.id);
    expect(self.status).toBe(400);
    expect(self.body.error.code).toBe('invalid_request');
    const unknown = await add('01900000-0000-7000-8000-000000000000');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    expect((await add('not-an-id')).status).toBe(400);
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: bea.accessToken, body: { userId: ana.id, note: 'x' } })).status).toBe(400);

    const added = await add(ana.id);
    expect(added.status).toBe(201);
    expect(added.body).toMatchObject({ id: ana.id, username: 'pf_ana' });
    expect(added.body.email).toBeUndefined();
    // Idempotent: the same contact again is 200 and no second entry.
    expect((await add(ana.id)).status).toBe(200);
    expect((await add(eve.id)).status).toBe(201);

    const list = await http(stack, 'GET', '/api/v1/contacts', { token: bea.accessToken });
    expect(list.body.items.map((u: { id: string }) => u.id)).toEqual([ana.id, eve.id]);
    expect(list.body.nextCursor).toBeNull();
    expect(JSON.stringify(list.body)).not.toContain('@example.test');
    const page1 = await http(stack, 'GET', '/api/v1/contacts?limit=1', { token: bea.accessToken });
    expect(page1.body.items.map((u: { id: string }) => u.id)).toEqual([ana.id]);
    const page2 = await http(stack, 'GET', `/api/v1/contacts?limit=1&before=${page1.body.nextCursor}`, { token: bea.accessToken });
    expect(page2.body).toMatchObject({ items: [{ id: eve.id }], nextCursor: null });
    // Contacts are one-way: Ana has not added Bea.
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: ana.accessToken })).body.items).toEqual([]);

    await http(stack, 'PATCH', '/api/v1/users/me', { token: ana.accessToken, body: { displayName: 'Ana Renamed' } });
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: bea.accessToken })).body.items[0].displayName).toBe('Ana Renamed');
    await http(stack, 'PATCH', '/api/v1/users/me', { token: ana.accessToken, body: { displayName: 'Ana Lima' } });

    expect((await http(stack, 'DELETE', `/api/v1/contacts/${ana.id}`, { token: bea.accessToken })).status).toBe(204);
    const again = await http(stack, 'DELETE', `/api/v1/contacts/${ana.id}`, { token: bea.accessToken });
    expect(again.status).toBe(404);
    expect(again.body.error.code).toBe('not_found');
    expect((await http(stack, 'DELETE', '/api/v1/contacts/not-an-id', { token: bea.accessToken })).status).toBe(400);
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: bea.accessToken })).body.items.map((u: { id: string }) => u.id)).toEqual([eve.id]);
    expect((await http(stack, 'DELETE', `/api/v1/contacts/${eve.id}`, { token: bea.accessToken })).status).toBe(204);
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: bea.accessToken })).body.items).toEqual([]);
  });

  it('needs a token on every profile and contact route', async () => {
    for (const [method, path] of [['GET', '/api/v1/users/me'], ['PATCH', '/api/v1/users/me'], ['GET', '/api/v1/users?query=pf'], ['GET', '/api/v1/contacts'], ['GET', '/api/v1/users/me/export']]) {
      const answer = await http(stack, method!, path!, method === 'PATCH' ? { body: { bio: 'x' } } : {});
      expect(answer.status, `${method} ${path}`).toBe(401);
      expect(answer.body.error.code).toBe('unauthorized');
    }
  });

  it('exports everything held about the caller and no secret', async () => {
    await http(stack, 'POST', '/api/v1/contacts', { token: ana.accessToken, body: { userId: bea.id } });
    const chat = (await http(stack, 'POST', '/api/v1/chats', { token: ana.accessToken, body: { type: 'direct', userId: bea.id } })).body;
    await http(stack, 'POST', `/api/v1/chats/${chat.id}/messages`, { token: ana.accessToken, body: { clientMsgId: 'e1', body: 'exported words' } });
    await http(stack, 'POST', `/api/v1/chats/${chat.id}/messages`, { token: bea.accessToken, body: { clientMsgId: 'e2', body: 'not ana\'s words' } });
    // A second session, refreshed once: both sessions are listed, no token of either.
    const login = await http(stack, 'POST', '/api/v1/auth/login', { body: { login: 'pf_ana', password: ana.password } });
    const refreshed = await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: login.body.refreshToken } });
    expect(refreshed.status).toBe(200);

    expect((await http(stack, 'PATCH', '/api/v1/users/me/privacy', { token: ana.accessToken, body: { groupAdd: 'nobody', presence: 'nobody' } })).status).toBe(200);
    expect((await http(stack, 'POST', '/api/v1/users/me/blocks', { token: ana.accessToken, body: { userId: bea.id } })).status).toBeLessThan(300);

    const exported = await eventually(async () => {
      const e = await http(stack, 'GET', '/api/v1/users/me/export', { token: ana.accessToken });
      return e.body.messages.length === 1 && e.body.securityLog.some((l: { action: string }) => l.action === 'login.succeeded') && e.body.blocks?.length === 1 && e.body.privacy?.presence === 'nobody' ? e : undefined;
    });
    expect(exported.status).toBe(200);
    expect(Date.parse(exported.body.exportedAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(exported.body.profile).toMatchObject({ id: ana.id, username: 'pf_ana', email: 'pf_ana@example.test', displayName: 'Ana Lima' });
    expect(exported.body.contacts).toEqual([{ id: bea.id, username: 'pf_bea', displayName: 'pf_bea', addedAt: expect.any(String) }]);
    // The settings and blocks she chose (they were missing).
    expect(exported.body.privacy).toEqual({ groupAdd: 'nobody', presence: 'nobody' });
    expect(exported.body.blocks).toEqual([{ userId: bea.id, blockedAt: expect.any(String) }]);
    // The same route with a trailing slash (it answered 500).
    expect((await http(stack, 'GET', '/api/v1/users/me/export/', { token: ana.accessToken })).status).toBe(200);
    expect(exported.body.chats).toMatchObject([{ id: chat.id, type: 'direct' }]);
    expect(exported.body.messages).toMatchObject([{ chatId: chat.id, body: 'exported words' }]);
    expect(exported.body.sessions).toHaveLength(2);
    for (const session of exported.body.sessions) {
      expect(Object.keys(session).sort()).toEqual(['createdAt', 'expiresAt', 'id', 'lastUsedAt', 'revokedAt', 'revokedReason']);
    }
    expect(exported.body.securityLog.map((l: { action: string }) => l.action)).toEqual(expect.arrayContaining(['user.registered', 'login.succeeded']));

    const text = JSON.stringify(exported.body);
    const secrets = ['argon2', ana.password, ana.refreshToken, ana.refreshToken.split('.')[1], ana.accessToken, login.body.refreshToken, refreshed.body.refreshToken];
    for (const secret of secrets) expect(text).not.toContain(secret);
    // Nothing about others beyond what links them to the caller.
    expect(text).not.toContain('pf_bea@example.test');
    expect(text).not.toContain("not ana's words");
  });

  it('exports a history larger than one NATS message whole (it was 503 past about 1 MiB)', async () => {
    // A user of this file of its own, so that the export test above keeps its one message.
    const [writer, reader] = [await register(stack, 'pf_writer'), await register(stack, 'pf_reader')];
    const chat = (await http(stack, 'POST', '/api/v1/chats', { token: writer.accessToken, body: { type: 'direct', userId: reader.id } })).body;
    // 320 messages of 4,000 two-byte characters: about 2.5 MiB of bodies.
    const count = 320;
    const bodyOf = (i: number) => `${i} `.padEnd(4000, 'ж');
    for (let i = 0; i < count; i += 16) {
      const sends = Array.from({ length: Math.min(16, count - i) }, (_, k) =>
        http(stack, 'POST', `/api/v1/chats/${chat.id}/messages`, { token: writer.accessToken, body: { clientMsgId: `big-${i + k}`, body: bodyOf(i + k) } }),
      );
      for (const sent of await Promise.all(sends)) expect(sent.status).toBe(201);
    }
    const exported = await eventually(async () => {
      const e = await http(stack, 'GET', '/api/v1/users/me/export', { token: writer.accessToken });
      expect(e.status).toBe(200);
      return e.body.messages.length === count ? e : undefined;
    });
    expect(Buffer.byteLength(JSON.stringify(exported.body))).toBeGreaterThan(2 * 1024 * 1024);
    expect(new Set(exported.body.messages.map((m: { body: string }) => m.body))).toEqual(new Set(Array.from({ length: count }, (_, i) => bodyOf(i))));
    expect(exported.body.profile.id).toBe(writer.id);
  });

  it('counts registered users on the users service', async () => {
    const db = new pg.Client({ connectionString: stack.env.databaseUrl });
    await db.connect();
    const registered = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM users.users')).rows[0]!.n;
    await db.end();
    expect(registered).toBe(5);
    const text = await (await fetch(`http://127.0.0.1:${stack.metricsPorts.users}/metrics`)).text();
    expect(/^users_total\{service="users"\} (\d+)$/m.exec(text)?.[1]).toBe(String(registered));
  });
});
