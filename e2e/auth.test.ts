import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, register, startStack, type Stack } from './stack.js';

describe('accounts over the gateway: register, login, refresh', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.stop());

  it('registers with an argon2id hash and answers with user and tokens', async () => {
    const answer = await http(stack, 'POST', '/api/v1/auth/register', {
      body: { username: 'Carol_1', email: 'carol@example.test', password: 'a fine passphrase', displayName: 'Carol' },
    });
    expect(answer.status).toBe(201);
    expect(answer.body.user).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      username: 'Carol_1',
      displayName: 'Carol',
      bio: '',
      avatarUrl: null,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    // api.md: the e-mail address only on /users/me.
    expect(answer.body.user.email).toBeUndefined();
    expect(answer.body.accessToken).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const db = new pg.Client({ connectionString: stack.env.databaseUrl });
    await db.connect();
    const row = (await db.query('SELECT password_hash FROM users.users WHERE id = $1', [answer.body.user.id])).rows[0];
    const session = (await db.query('SELECT refresh_hash FROM users.sessions WHERE user_id = $1', [answer.body.user.id])).rows[0];
    await db.end();
    expect(row.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    // Only a hash of the refresh token is stored.
    const secret = answer.body.refreshToken.split('.')[1];
    expect(session.refresh_hash.toString('utf8')).not.toContain(secret);
    expect(session.refresh_hash).toHaveLength(32);
  });

  it('refuses a taken username or e-mail, case-insensitively, with 409 and the contract codes', async () => {
    await register(stack, 'dave');
    const name = await http(stack, 'POST', '/api/v1/auth/register', { body: { username: 'DAVE', email: 'other@example.test', password: 'long enough pw' } });
    expect(name.status).toBe(409);
    expect(name.body.error.code).toBe('username_taken');
    const mail = await http(stack, 'POST', '/api/v1/auth/register', { body: { username: 'dave2', email: 'DAVE@example.test', password: 'long enough pw' } });
    expect(mail.status).toBe(409);
    expect(mail.body.error.code).toBe('email_taken');
  });

  it('lets only one of two simultaneous registrations of a name succeed', async () => {
    const results = await Promise.all(
      ['a', 'b', 'c'].map((s) => http(stack, 'POST', '/api/v1/auth/register', { body: { username: 'racer', email: `racer-${s}@example.test`, password: 'long enough pw' } })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    // The losers' e-mails are not left claimed: they can register under another name.
    const loser = results.findIndex((r) => r.status === 409);
    const retry = await http(stack, 'POST', '/api/v1/auth/register', { body: { username: 'racer2', email: `racer-${['a', 'b', 'c'][loser]}@example.test`, password: 'long enough pw' } });
    expect(retry.status).toBe(201);
  });

  it('rejects bad registration input with 400 and changes nothing', async () => {
    const cases = [
      { username: 'x', email: 'x@example.test', password: 'long enough pw' },
      { username: 'has space', email: 'y@example.test', password: 'long enough pw' },
      { username: 'shortpw', email: 'z@example.test', password: 'short' },
      { username: 'longpw', email: 'w@example.test', password: 'p'.repeat(257) },
      { username: 'bademail', email: 'not-an-email', password: 'long enough pw' },
      { username: 'extra', email: 'e@example.test', password: 'long enough pw', admin: true },
      { username: 42, email: 'n@example.test', password: 'long enough pw' },
    ];
    for (const body of cases) {
      const answer = await http(stack, 'POST', '/api/v1/auth/register', { body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.error.code).toBe('invalid_request');
    }
    const malformed = await http(stack, 'POST', '/api/v1/auth/register', { raw: '{"username":' });
    expect(malformed.status).toBe(400);
    const missing = await http(stack, 'POST', '/api/v1/auth/register', {});
    expect(missing.status).toBe(400);
    const login = await http(stack, 'POST', '/api/v1/auth/login', { body: { login: 'shortpw', password: 'short' } });
    expect(login.status).toBe(401);
  });

  it('logs in by username or e-mail and answers the same for a wrong password and an unknown user', async () => {
    const erin = await register(stack, 'erin');
    for (const login of ['erin', 'ERIN', 'erin@example.test']) {
      const ok = await http(stack, 'POST', '/api/v1/auth/login', { body: { login, password: erin.password } });
      expect(ok.status).toBe(200);
      expect(ok.body.user.id).toBe(erin.id);
    }
    const wrong = await http(stack, 'POST', '/api/v1/auth/login', { body: { login: 'erin', password: 'not her password' } });
    const unknown = await http(stack, 'POST', '/api/v1/auth/login', { body: { login: 'nobody-here', password: 'not her password' } });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(unknown.body).toEqual(wrong.body);
    expect(wrong.body.error.code).toBe('invalid_credentials');
  });

  it('rotates refresh tokens: the old one stops working, and replaying it ends the session', async () => {
    const frank = await register(stack, 'frank');
    const first = await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: frank.refreshToken } });
    expect(first.status).toBe(200);
    expect(first.body.refreshToken).not.toBe(frank.refreshToken);
    const me = await http(stack, 'GET', '/api/v1/users/me', { token: first.body.accessToken });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ id: frank.id, email: 'frank@example.test' });

    // The rotated-away token is replayed (stolen): refused, and the whole session is revoked.
    const replay = await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: frank.refreshToken } });
    expect(replay.status).toBe(401);
    const afterTheft = await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: first.body.refreshToken } });
    expect(afterTheft.status).toBe(401);
  });

  it('lets exactly one of two concurrent refreshes with the same token win', async () => {
    const gina = await register(stack, 'gina');
    const [a, b] = await Promise.all([
      http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: gina.refreshToken } }),
      http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: gina.refreshToken } }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 401]);
  });

  it('refuses garbage refresh tokens and protected routes without a valid access token', async () => {
    for (const refreshToken of ['junk', 'a.b', `${'0'.repeat(36)}.${'x'.repeat(43)}`, `01900000-0000-7000-8000-000000000000.${'x'.repeat(43)}`]) {
      expect((await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken } })).status).toBe(401);
    }
    expect((await http(stack, 'GET', '/api/v1/users/me')).status).toBe(401);
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: 'a.b.c' })).status).toBe(401);
    // A token signed with another key is refused.
    const forged = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4Iiwic2lkIjoieSJ9.c2lnbmF0dXJl';
    const answer = await http(stack, 'GET', '/api/v1/chats', { token: forged });
    expect(answer.status).toBe(401);
    expect(answer.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
  });

  it('serves public profiles without the e-mail, and 404 for unknown ids', async () => {
    const hank = await register(stack, 'hank');
    const viewer = await register(stack, 'ivy');
    const profile = await http(stack, 'GET', `/api/v1/users/${hank.id}`, { token: viewer.accessToken });
    expect(profile.status).toBe(200);
    expect(profile.body).toMatchObject({ id: hank.id, username: 'hank' });
    expect(profile.body.email).toBeUndefined();
    const missing = await http(stack, 'GET', '/api/v1/users/01900000-0000-7000-8000-000000000000', { token: viewer.accessToken });
    expect(missing.status).toBe(404);
    const junk = await http(stack, 'GET', '/api/v1/users/not-an-id', { token: viewer.accessToken });
    expect(junk.status).toBe(400);
  });

  it('answers unknown routes with the 404 envelope and oversize bodies with 413', async () => {
    const unknown = await http(stack, 'GET', '/api/v1/nothing-here');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    const big = await http(stack, 'POST', '/api/v1/auth/login', { raw: JSON.stringify({ login: 'x', password: 'y'.repeat(600 * 1024) }) });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('payload_too_large');
  });
});
