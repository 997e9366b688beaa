import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, mailMatch, register, startStack, type Account, type Stack } from '../stack.js';
import { expectError } from './helpers.js';

/** The verification token of a mail to `email`. */
const verificationToken = (dir: string, email: string) => mailMatch(dir, email, /verify-email#token=([A-Za-z0-9_.-]+)/);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Issue 23, finding 5: registration answered `email_taken` fast and without limit (an oracle of
 * which addresses have accounts), and nothing proved that an account's owner receives mail at its
 * address. Now: registrations are throttled per client address, a taken name costs the same argon2
 * work as a registration, and a verification link proves the address; an operator may require it
 * before an account starts chats or adds contacts.
 */
describe('registration and e-mail verification', () => {
  let stack: Stack;
  let mailDir: string;
  beforeAll(async () => {
    mailDir = await mkdtemp(path.join(os.tmpdir(), 'parley-verify-'));
    stack = await startStack({
      MAIL_DIR: mailDir,
      REQUIRE_VERIFIED_EMAIL: 'true',
      REGISTER_MAX_PER_ADDRESS: '1000',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000',
      LOGIN_SLOWDOWN_AFTER_FAILURES: '1000',
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(mailDir, { recursive: true, force: true });
  });
  const email = (a: Account) => `${a.username}@example.test`;

  it('verifies the address with the mailed link, once it is followed, and says so on /users/me', async () => {
    const user = await register(stack);
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: user.accessToken })).body).toMatchObject({ email: email(user), emailVerified: false });
    const token = await verificationToken(mailDir, email(user));
    // A token altered in any way, or someone else's, verifies nothing.
    const [payload, mac] = token.split('.');
    for (const bad of [`${payload}.${mac!.slice(0, -2)}AA`, `${payload}x.${mac}`, 'garbage', `${token}.extra`]) {
      expectError(await http(stack, 'POST', '/api/v1/auth/verify-email', { body: { token: bad } }), 400, 'invalid_request');
    }
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: user.accessToken })).body.emailVerified).toBe(false);
    expect((await http(stack, 'POST', '/api/v1/auth/verify-email', { body: { token } })).status).toBe(204);
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: user.accessToken })).body.emailVerified).toBe(true);
    // Following the link again changes nothing.
    expect((await http(stack, 'POST', '/api/v1/auth/verify-email', { body: { token } })).status).toBe(204);
    // Asking for another mail once verified sends none.
    expect((await http(stack, 'POST', '/api/v1/users/me/email/verification', { token: user.accessToken })).status).toBe(204);
  });

  it('with REQUIRE_VERIFIED_EMAIL, refuses starting chats and adding contacts until the address is verified', async () => {
    const [ann, bob] = [await register(stack), await register(stack)];
    expectError(await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } }), 403, 'email_unverified');
    expectError(await http(stack, 'POST', '/api/v1/contacts', { token: ann.accessToken, body: { userId: bob.id } }), 403, 'email_unverified');
    expect((await http(stack, 'POST', '/api/v1/auth/verify-email', { body: { token: await verificationToken(mailDir, email(ann)) } })).status).toBe(204);
    // The next access token says so (refresh, or sign in again).
    const refreshed = await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: ann.refreshToken } });
    expect(refreshed.status).toBe(200);
    expect((await http(stack, 'POST', '/api/v1/chats', { token: refreshed.body.accessToken, body: { type: 'direct', userId: bob.id } })).status).toBe(201);
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: refreshed.body.accessToken, body: { userId: bob.id } })).status).toBe(201);
  });

  it('with REQUIRE_VERIFIED_EMAIL, refuses those routes however the request target spells them', async () => {
    const [ann, bob] = [await register(stack), await register(stack)];
    // The request line as sent, byte for byte (fetch would drop the fragment and normalise escapes).
    const raw = (target: string, body: unknown) =>
      new Promise<number>((resolve, reject) => {
        const url = new URL(stack.baseUrl);
        const payload = JSON.stringify(body);
        const socket = connect(Number(url.port), url.hostname, () => {
          socket.write(`POST ${target} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${ann.accessToken}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`);
        });
        let answer = '';
        socket.on('data', (chunk) => (answer += chunk.toString()));
        socket.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)));
        socket.on('error', reject);
      });
    // Before, `/api/v1/chats/#` reached POST /api/v1/chats past the check (the services' router
    // ends the path at a fragment).
    expect(await raw('/api/v1/chats/#', { type: 'direct', userId: bob.id })).toBe(400);
    expect(await raw('/api/v1/contacts/#', { userId: bob.id })).toBe(400);
    expect(await raw('/api/v1/contacts/', { userId: bob.id })).toBe(403);
    expect(await raw('/api/v1/chats', { type: 'direct', userId: bob.id })).toBe(403);
  });

  it('re-sends the verification mail on request, at most VERIFY_EMAIL_MAX_REQUESTS times a window', async () => {
    const user = await register(stack);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await http(stack, 'POST', '/api/v1/users/me/email/verification', { token: user.accessToken })).status);
    expect(statuses).toEqual([202, 202, 202, 429]);
  });

  it('takes a display name as PATCH /users/me does: trimmed, and never blank', async () => {
    const suffix = Date.now() % 100000;
    const blank = await http(stack, 'POST', '/api/v1/auth/register', { body: { username: `blank${suffix}`, email: `blank${suffix}@example.test`, password: 'a long enough passphrase', displayName: '   ' } });
    // Before: 201, and a name of three spaces.
    expectError(blank, 400, 'invalid_request');
    const padded = await http(stack, 'POST', '/api/v1/auth/register', { body: { username: `padded${suffix}`, email: `padded${suffix}@example.test`, password: 'a long enough passphrase', displayName: '  Ann Lee ' } });
    expect(padded.status).toBe(201);
    expect(padded.body.user.displayName).toBe('Ann Lee');
  });

  it('answers a taken e-mail no faster than a wrong password (one argon2 hash each)', async () => {
    const known = await register(stack);
    const login = await register(stack);
    const taken: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < 13; i++) {
      let t = performance.now();
      const a = await http(stack, 'POST', '/api/v1/auth/register', { body: { username: `taken${i}x${Date.now() % 100000}`, email: email(known), password: 'a long enough passphrase' } });
      const ta = performance.now() - t;
      t = performance.now();
      const b = await http(stack, 'POST', '/api/v1/auth/login', { body: { login: login.username, password: `not the password ${i}` } });
      const tb = performance.now() - t;
      expectError(a, 409, 'email_taken');
      expect(b.status).toBe(401);
      if (i < 3) continue;
      taken.push(ta);
      wrong.push(tb);
    }
    // Before: the taken answer skipped the hash and came back several times faster.
    expect(median(taken) / median(wrong)).toBeGreaterThan(0.5);
  });
});

describe('registration throttle', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ REGISTER_MAX_PER_ADDRESS: '3' });
  });
  afterAll(async () => stack?.stop());

  it('answers 429 from one client address after REGISTER_MAX_PER_ADDRESS attempts, taken or not', async () => {
    const owner = await register(stack);
    const attempt = (i: number) =>
      http(stack, 'POST', '/api/v1/auth/register', { body: { username: `probe${i}x${Date.now() % 100000}`, email: `${owner.username}@example.test`, password: 'a long enough passphrase' } });
    // The owner's own registration was the first of three.
    expectError(await attempt(1), 409, 'email_taken');
    expectError(await attempt(2), 409, 'email_taken');
    const blocked = await attempt(3);
    expectError(blocked, 429, 'rate_limited');
    // A fresh address is refused as well: the limit is on the client, not on the answer.
    const fresh = await http(stack, 'POST', '/api/v1/auth/register', { body: { username: `fresh${Date.now() % 100000}`, email: `fresh${Date.now()}@example.test`, password: 'a long enough passphrase' } });
    expectError(fresh, 429, 'rate_limited');
    for (let i = 0; i < 10; i++) expectError(await attempt(10 + i), 429, 'rate_limited');

    // The audit log notes the refusals once for this client and window, not once each (a flood
    // of refusals filled the audit stream). Read after an entry recorded after them: the audit
    // projection applies entries in order.
    expect((await http(stack, 'POST', '/api/v1/auth/login', { body: { login: owner.username, password: owner.password } })).status).toBe(200);
    const db = new pg.Client({ connectionString: stack.env.databaseUrl });
    await db.connect();
    try {
      await eventually(async () => ((await db.query("SELECT 1 FROM users.audit_log WHERE user_id = $1 AND action = 'login.succeeded'", [owner.id])).rowCount ? true : undefined));
      expect((await db.query("SELECT count(*)::int AS n FROM users.audit_log WHERE action = 'registration.throttled'")).rows[0].n).toBe(1);
    } finally {
      await db.end();
    }
  });
});
