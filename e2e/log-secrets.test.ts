import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { http, startCompiledServices } from './stack.js';


/**
 * The services as operators run them (compiled, separate processes, debug logging), driven through
 * every flow that handles a secret, with sentinel values; then not one log line may contain any of
 * them. Debug is the most a production log would ever be set to.
 */
describe('secrets never reach the logs', () => {
  let env: TestEnv;
  let mailDir: string;
  let services: { stop(): Promise<void> } | undefined;
  const output: string[] = [];
  let base: string;

  beforeAll(async () => {
    env = await createTestEnv();
    mailDir = await mkdtemp(path.join(os.tmpdir(), 'parley-log-mail-'));
    const port = 20000 + Math.floor(Math.random() * 20000);
    base = `http://127.0.0.1:${port}`;
    const vars = { ...process.env, ...env.env, LOG_LEVEL: 'debug', PORT: String(port), METRICS_PORT: '0', MAIL_DIR: mailDir };
    services = await startCompiledServices({ envOf: () => vars, baseUrl: base, output });
  }, 60_000);

  afterAll(async () => {
    await services?.stop();
    await env?.cleanup();
  });

  it('keeps passwords, tokens, reset tokens and message bodies out of every log line', async () => {
    const password = 'Sentinel-Password-7b1e9c';
    const newPassword = 'Sentinel-NewPassword-44d0aa';
    const body = 'sentinel-message-body-e5f3';
    const api = (method: string, url: string, options: { token?: string; body?: unknown } = {}) => http({ baseUrl: base }, method, url, options);
    const reg = await eventually(async () => {
      const r = await api('POST', '/api/v1/auth/register', { body: { username: 'sentinel', email: 'sentinel@example.test', password } });
      return r.status === 201 ? r : undefined;
    }, 20_000, 'register');
    const other = (await api('POST', '/api/v1/auth/register', { body: { username: 'other', email: 'other@example.test', password: 'other-password-long' } })).body;
    const secrets = [password, newPassword, body, reg.body.accessToken, reg.body.refreshToken, other.accessToken];

    expect((await api('POST', '/api/v1/auth/login', { body: { login: 'sentinel', password: 'wrong-password-x' } })).status).toBe(401);
    const login = (await api('POST', '/api/v1/auth/login', { body: { login: 'sentinel', password } })).body;
    secrets.push(login.accessToken, login.refreshToken);
    const refreshed = (await api('POST', '/api/v1/auth/refresh', { body: { refreshToken: login.refreshToken } })).body;
    secrets.push(refreshed.accessToken, refreshed.refreshToken);
    expect((await api('POST', '/api/v1/auth/refresh', { body: { refreshToken: login.refreshToken } })).status).toBe(401); // reuse
    const chat = (await api('POST', '/api/v1/chats', { token: reg.body.accessToken, body: { type: 'direct', userId: other.user.id } })).body;
    expect((await api('POST', `/api/v1/chats/${chat.id}/messages`, { token: reg.body.accessToken, body: { clientMsgId: 's1', body } })).status).toBe(201);
    expect((await api('POST', '/api/v1/users/me/password', { token: reg.body.accessToken, body: { currentPassword: password, newPassword } })).status).toBe(204);
    expect((await api('POST', '/api/v1/auth/password-reset/request', { body: { email: 'sentinel@example.test' } })).status).toBe(202);
    const mail = await eventually(async () => {
      // Only finished mails: one being written is a hidden .tmp file until it is renamed.
      // Registration mailed a verification link before: the reset mail is the one with its subject.
      for (const file of (await readdir(mailDir)).filter((f) => f.endsWith('.eml'))) {
        const text = await readFile(path.join(mailDir, file), 'utf8');
        if (text.includes('Subject: Reset your Parley password')) return text;
      }
      return undefined;
    }, 10_000, 'reset mail');
    // The mail is quoted-printable: undo soft line breaks and =XX escapes before reading the link.
    const decoded = mail.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    const resetToken = /reset-password#token=([A-Za-z0-9_-]{43})/.exec(decoded)![1]!;
    secrets.push(resetToken);
    expect((await api('POST', '/api/v1/auth/password-reset/confirm', { body: { token: resetToken, newPassword: 'Sentinel-Reset-Password-91' } })).status).toBe(204);
    secrets.push('Sentinel-Reset-Password-91');
    const relog = (await api('POST', '/api/v1/auth/login', { body: { login: 'sentinel', password: 'Sentinel-Reset-Password-91' } })).body;
    secrets.push(relog.accessToken, relog.refreshToken);
    expect((await api('DELETE', '/api/v1/users/me', { token: relog.accessToken, body: { password: 'Sentinel-Reset-Password-91' } })).status).toBe(202);
    expect((await api('POST', '/api/v1/auth/logout', { token: other.accessToken })).status).toBe(204);

    const logs = output.join('');
    // The flows above were logged (debug and info lines from all three services)...
    expect(logs).toContain('"service":"gateway"');
    expect(logs).toContain('"service":"users"');
    expect(logs.split('\n').filter(Boolean).length).toBeGreaterThan(5);
    // ...and none of it leaked a secret.
    for (const secret of secrets) expect(logs.includes(secret), `a log line contains ${secret.slice(0, 12)}…`).toBe(false);
  }, 90_000);
});
