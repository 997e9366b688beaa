import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdLock } from './pg-lock.js';
import { createTestEnv, eventually } from '@parley/testing';
import { startGatewayService } from '../services/gateway/src/service.js';
import { rebuildUsers } from '../services/users/src/rebuild.js';
import { startUsersService } from '../services/users/src/service.js';
import { http, register, startStack, TestSocket, type Account, type Stack } from './stack.js';

/** Every file in the mail folder (the development transport writes one .eml per mail). */
/**
 * The written mails, oldest first. Only `.eml` files: a mail being written is a hidden `.tmp` file
 * first, which sorts before every mail; counted, it made "the newest mail" an older one, so the
 * reset test once confirmed another account's token and found its own sessions still alive.
 */
async function mailFiles(dir: string): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.eml')).sort();
  // Reset mails only: every registration also mails a verification link.
  const isReset = await Promise.all(files.map(async (f) => (await readFile(path.join(dir, f), 'utf8')).includes('Subject: Reset your Parley password')));
  return files.filter((_, i) => isReset[i]);
}

/** The reset token in a written mail. Quoted-printable (long lines, `=` as `=3D`) is decoded first. */
async function tokenOf(dir: string, file: string): Promise<string> {
  const text = (await readFile(path.join(dir, file), 'utf8'))
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  const token = /reset-password#token=([A-Za-z0-9_-]{43})/.exec(text)?.[1];
  if (!token) throw new Error(`no reset token in ${file}`);
  return token;
}

/** Waits for the `count`-th mail and returns its file name. */
async function nthMail(dir: string, count: number): Promise<string> {
  return eventually(async () => {
    const files = await mailFiles(dir);
    return files.length >= count ? files[count - 1] : undefined;
  }, 5_000, `mail number ${count}`);
}

const login = (stack: Stack, who: string, password: string) => http(stack, 'POST', '/api/v1/auth/login', { body: { login: who, password } });
const refresh = (stack: Stack, refreshToken: string) => http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken } });
const confirm = (stack: Pick<Stack, 'baseUrl'>, token: string, newPassword: string) =>
  http(stack, 'POST', '/api/v1/auth/password-reset/confirm', { body: { token, newPassword } });

async function auditActions(stack: Stack, accessToken: string): Promise<string[]> {
  const answer = await http(stack, 'GET', '/api/v1/users/me/audit', { token: accessToken });
  return answer.status === 200 ? answer.body.items.map((i: { action: string }) => i.action) : [];
}

describe('passwords: policy, change and reset over the gateway', () => {
  let stack: Stack;
  let mailDir: string;
  let db: pg.Client;

  beforeAll(async () => {
    mailDir = await mkdtemp(path.join(os.tmpdir(), 'parley-mail-'));
    stack = await startStack({ MAIL_DIR: mailDir });
    db = new pg.Client({ connectionString: stack.env.databaseUrl });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    await stack?.stop();
    await rm(mailDir, { recursive: true, force: true });
  });

  it('refuses the most common passwords at registration, case-insensitively, before creating anything', async () => {
    for (const password of ['password1', 'PassWord1', 'iloveyou', 'trustno1', 'baseball1']) {
      const answer = await http(stack, 'POST', '/api/v1/auth/register', { body: { username: 'commoner', email: 'commoner@example.test', password } });
      expect(answer.status, password).toBe(400);
      expect(answer.body).toEqual({ error: { code: 'invalid_request', message: expect.stringMatching(/too common/) } });
      expect(answer.body.error.message).not.toContain(password);
    }
    // Nothing was claimed: the name is still free.
    const ok = await http(stack, 'POST', '/api/v1/auth/register', { body: { username: 'commoner', email: 'commoner@example.test', password: 'an uncommon passphrase' } });
    expect(ok.status).toBe(201);
  });

  it('changes the password only with the right current one, ends the other sessions and keeps this one', async () => {
    const a = await register(stack, 'changer');
    const other = (await login(stack, 'changer', a.password)).body as Account;
    const otherSocket = await TestSocket.open(stack.wsUrl, other.accessToken);
    await otherSocket.sync();

    const wrong = await http(stack, 'POST', '/api/v1/users/me/password', { token: a.accessToken, body: { currentPassword: 'not the password', newPassword: 'a brand new secret' } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('invalid_credentials');
    const common = await http(stack, 'POST', '/api/v1/users/me/password', { token: a.accessToken, body: { currentPassword: a.password, newPassword: 'Password1' } });
    expect(common.status).toBe(400);
    expect(common.body.error).toEqual({ code: 'invalid_request', message: expect.stringMatching(/too common/) });
    const short = await http(stack, 'POST', '/api/v1/users/me/password', { token: a.accessToken, body: { currentPassword: a.password, newPassword: 'short' } });
    expect(short.status).toBe(400);
    const anonymous = await http(stack, 'POST', '/api/v1/users/me/password', { body: { currentPassword: a.password, newPassword: 'a brand new secret' } });
    expect(anonymous.status).toBe(401);
    // None of the refused attempts changed anything.
    expect((await login(stack, 'changer', a.password)).status).toBe(200);

    const changed = await http(stack, 'POST', '/api/v1/users/me/password', { token: a.accessToken, body: { currentPassword: a.password, newPassword: 'a brand new secret' } });
    expect(changed.status).toBe(204);
    expect((await login(stack, 'changer', a.password)).status).toBe(401);
    expect((await login(stack, 'changer', 'a brand new secret')).status).toBe(200);

    // The other session is over: refresh, access token and socket.
    expect((await refresh(stack, other.refreshToken)).status).toBe(401);
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: other.accessToken })).status).toBe(401);
    expect((await otherSocket.waitClosed(2_000)).code).toBe(4401);
    // The session that made the change goes on.
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: a.accessToken })).status).toBe(200);
    expect((await refresh(stack, a.refreshToken)).status).toBe(200);

    await eventually(async () => ((await auditActions(stack, a.accessToken)).includes('password.changed') ? true : undefined), 5_000, 'password.changed audit entry');
    // The two other sessions (the second login and the check after the refusals), each counted once:
    // the change revokes twice, before and after the new hash is visible.
    const entries = (await http(stack, 'GET', '/api/v1/users/me/audit', { token: a.accessToken })).body.items as { action: string; details: { revokedSessions?: number } }[];
    expect(entries.find((e) => e.action === 'password.changed')?.details.revokedSessions).toBe(2);
  });

  it('leaves no session to a login with the old password made while a change waits for the projection', async () => {
    const a = await register(stack, 'racer');
    // A second session, which the change revokes first: the sign that it has got that far.
    expect((await login(stack, 'racer', a.password)).status).toBe(200);
    const { rows } = await db.query<{ id: string }>("SELECT id FROM users.users WHERE username = 'racer'");
    const userId = rows[0]!.id;
    // The account's row held, as a slow projector would: the new hash is not visible meanwhile.
    const holder = await holdLock(stack.env.databaseUrl, 'SELECT 1 FROM users.users WHERE id = $1 FOR UPDATE', [userId]);
    try {
      const change = http(stack, 'POST', '/api/v1/users/me/password', { token: a.accessToken, body: { currentPassword: a.password, newPassword: 'the racer changed it' } });
      // The change has published and revoked: the projector now waits for the row.
      await eventually(async () => ((await db.query("SELECT 1 FROM users.sessions WHERE user_id = $1 AND revoked_reason = 'password_changed'", [userId])).rowCount ?? 0) > 0 || undefined, 10_000, 'the first revocation');
      let answered = false;
      const oldLogin = login(stack, 'racer', a.password).finally(() => (answered = true));
      // Until the login has answered, or it waits for the row as well (a second waiter beside the projector).
      const waiters = async () =>
        Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows[0]!.n);
      await eventually(async () => answered || (await waiters()) >= 2 || undefined, 10_000, 'the login answered or waiting');
      await holder.release();
      expect((await change).status).toBe(204);
      const session = await oldLogin;
      // Refused, or its session is already over: access and refresh.
      if (session.status === 200) {
        expect((await http(stack, 'GET', '/api/v1/users/me', { token: session.body.accessToken })).status).toBe(401);
        expect((await refresh(stack, session.body.refreshToken)).status).toBe(401);
      } else {
        expect(session.status).toBe(401);
      }
      expect((await login(stack, 'racer', a.password)).status).toBe(401);
    } finally {
      await holder.end();
    }
  });

  it('answers reset requests alike for known and unknown addresses and mails only the known one', async () => {
    const a = await register(stack, 'forgetful');
    const before = (await mailFiles(mailDir)).length;
    const unknown = await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: 'nobody-at-all@example.test' } });
    const known = await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: 'FORGETFUL@example.test' } });
    expect(unknown.status).toBe(202);
    expect(known.status).toBe(202);
    expect(known.body).toEqual(unknown.body);

    const file = await nthMail(mailDir, before + 1);
    const raw = await readFile(path.join(mailDir, file), 'utf8');
    expect(raw).toMatch(/^To: forgetful@example\.test$/m);
    expect(raw).toMatch(/^Subject: Reset your Parley password$/m);
    expect(raw).toContain('http://localhost:8080/reset-password#token=');
    // The unknown address's request has been handled too (its audit entry is written last) and
    // left no mail behind.
    await eventually(async () => {
      const { rows } = await db.query(`SELECT 1 FROM users.audit_log WHERE user_id IS NULL AND action = 'password.reset.requested'`);
      return rows.length > 0 ? true : undefined;
    }, 5_000, 'the unknown address\'s request to finish');
    expect(await mailFiles(mailDir)).toHaveLength(before + 1);
    // Malformed input is still a 400, like every route.
    expect((await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: 'not-an-address' } })).status).toBe(400);
    // The owner sees the request in their audit log; nobody sees the unknown address's.
    await eventually(async () => ((await auditActions(stack, a.accessToken)).includes('password.reset.requested') ? true : undefined), 5_000, 'reset request audit entry');
  });

  it('resets with the token exactly once, ends every session, and keeps the token out of the logs', async () => {
    const a = await register(stack, 'resetter');
    const second = (await login(stack, 'resetter', a.password)).body as Account;
    const before = (await mailFiles(mailDir)).length;
    expect((await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: 'resetter@example.test' } })).status).toBe(202);
    const file = await nthMail(mailDir, before + 1);
    const token = await tokenOf(mailDir, file);

    // A refused new password does not use the token up.
    const common = await confirm(stack, token, 'qwertyuiop');
    expect(common.status).toBe(400);
    expect(common.body.error.message).toMatch(/too common/);

    // Two confirmations at once: exactly one wins.
    const [x, y] = await Promise.all([confirm(stack, token, 'reset passphrase one'), confirm(stack, token, 'reset passphrase two')]);
    expect([x.status, y.status].sort()).toEqual([204, 400]);
    const loser = x.status === 400 ? x : y;
    expect(loser.body).toEqual({ error: { code: 'invalid_request', message: 'Invalid or expired reset token' } });
    const winner = x.status === 204 ? 'reset passphrase one' : 'reset passphrase two';
    const again = await confirm(stack, token, 'reset passphrase three');
    expect(again.status).toBe(400);
    expect(again.body).toEqual(loser.body);
    // Unknown and malformed tokens get the very same answer.
    for (const bogus of ['x', 'A'.repeat(43), token.slice(1)]) expect((await confirm(stack, bogus, 'reset passphrase four')).body).toEqual(loser.body);

    // Every session is over, the old password too; the winner's new password works.
    for (const session of [a, second]) {
      expect((await refresh(stack, session.refreshToken)).status).toBe(401);
      expect((await http(stack, 'GET', '/api/v1/users/me', { token: session.accessToken })).status).toBe(401);
    }
    expect((await login(stack, 'resetter', a.password)).status).toBe(401);
    const fresh = await login(stack, 'resetter', winner);
    expect(fresh.status).toBe(200);
    await eventually(async () => {
      const actions = await auditActions(stack, fresh.body.accessToken);
      return actions.includes('password.reset.completed') && actions.includes('password.reset.requested') ? true : undefined;
    }, 5_000, 'reset audit entries');

    // Only the SHA-256 of the token is stored, and the row is marked used.
    const { rows } = await db.query('SELECT token_hash, used_at FROM users.password_resets WHERE user_id = $1', [a.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0].token_hash.equals(createHash('sha256').update(token).digest())).toBe(true);
    expect(rows[0].used_at).toBeInstanceOf(Date);
    // The token is in its mail and nowhere else we can see: not in the audit log, no other file.
    const audit = await db.query('SELECT row_to_json(a)::text AS line FROM users.audit_log a');
    expect(audit.rows.length).toBeGreaterThan(0);
    for (const { line } of audit.rows) expect(line).not.toContain(token);
    for (const other of await mailFiles(mailDir)) {
      if (other === file) continue;
      expect(await readFile(path.join(mailDir, other), 'utf8')).not.toContain(token);
    }
  });
});

describe('expired reset tokens', () => {
  let stack: Stack;
  let mailDir: string;

  beforeAll(async () => {
    mailDir = await mkdtemp(path.join(os.tmpdir(), 'parley-mail-'));
    stack = await startStack({ MAIL_DIR: mailDir, RESET_TOKEN_TTL: '1' });
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(mailDir, { recursive: true, force: true });
  });

  it('refuses a token past RESET_TOKEN_TTL and leaves the password as it was', async () => {
    const a = await register(stack, 'slowpoke');
    expect((await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: 'slowpoke@example.test' } })).status).toBe(202);
    const token = await tokenOf(mailDir, await nthMail(mailDir, 1));
    // The token is real (its hash is stored), so the refusal below is the expiry's doing.
    const db = new pg.Client({ connectionString: stack.env.databaseUrl });
    await db.connect();
    const { rows } = await db
      .query('SELECT 1 FROM users.password_resets WHERE token_hash = $1', [createHash('sha256').update(token).digest()])
      .finally(() => db.end());
    expect(rows).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const late = await confirm(stack, token, 'too late a passphrase');
    expect(late.status).toBe(400);
    expect(late.body).toEqual({ error: { code: 'invalid_request', message: 'Invalid or expired reset token' } });
    expect((await login(stack, 'slowpoke', a.password)).status).toBe(200);
  });
});

describe('reset tokens and a rebuild', () => {
  it('replays the resets stream into the same rows, used tokens staying used', async () => {
    const env = await createTestEnv();
    const mailDir = await mkdtemp(path.join(os.tmpdir(), 'parley-mail-'));
    const db = new pg.Client({ connectionString: env.databaseUrl });
    try {
      const vars = { ...env.env, PORT: '0', METRICS_PORT: '0', MAIL_DIR: mailDir };
      const users = await startUsersService(vars);
      const gateway = await startGatewayService(vars);
      const stack = { baseUrl: `http://127.0.0.1:${gateway.port}` };
      const a = await register(stack, 'rebuilt');
      for (let i = 1; i <= 2; i++) {
        await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: 'rebuilt@example.test' } });
        await nthMail(mailDir, i);
      }
      const used = await tokenOf(mailDir, (await mailFiles(mailDir))[0] ?? '');
      expect((await confirm(stack, used, 'rebuilt passphrase')).status).toBe(204);
      await db.connect();
      // Two requests and one completion projected.
      await eventually(async () => {
        const { rows } = await db.query(`SELECT stream_seq FROM users.projection_checkpoints WHERE projector = 'resets-projection'`);
        return Number(rows[0]?.stream_seq ?? 0) >= 3 ? true : undefined;
      });
      const rows = async () => (await db.query('SELECT * FROM users.password_resets ORDER BY id')).rows;
      const before = await rows();
      expect(before.map((r) => r.used_at !== null).sort()).toEqual([false, true]);
      await gateway.stop();
      await users.stop();

      // users stream: UserRegistered, PasswordChanged; audit: user.registered, 2 × reset.requested,
      // reset.completed; resets stream: 2 × PasswordResetRequested, PasswordResetCompleted.
      expect(await rebuildUsers(vars)).toBe(2 + 4 + 3);
      expect(await rows()).toEqual(before);
      const after = await db.query('SELECT password_hash FROM users.users WHERE id = $1', [a.id]);
      expect(after.rows[0].password_hash).toMatch(/^\$argon2id\$/);
    } finally {
      await db.end().catch(() => {});
      await env.cleanup();
      await rm(mailDir, { recursive: true, force: true });
    }
  });
});
