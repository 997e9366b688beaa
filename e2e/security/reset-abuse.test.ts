import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, register, startStack, type Account, type Stack } from '../stack.js';
import { expectError, tokenFor } from './helpers.js';

/**
 * Issue 23, finding 4: reset requests were not throttled (20 requests, 20 mails), and the other
 * outstanding reset tokens stayed valid after a successful reset or a password change.
 */
describe('password reset: request throttle, and one change ends every outstanding token', () => {
  let stack: Stack;
  let mailDir: string;
  const seen = new Set<string>();
  beforeAll(async () => {
    mailDir = await mkdtemp(path.join(os.tmpdir(), 'parley-reset-abuse-'));
    stack = await startStack({ MAIL_DIR: mailDir, RESET_MAX_REQUESTS_PER_ACCOUNT: '3', RESET_MAX_REQUESTS_PER_ADDRESS: '11' });
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(mailDir, { recursive: true, force: true });
  });
  const email = (who: Account) => `${who.username}@example.test`;
  const request = (address: string) => http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: address } });
  const confirm = (token: string, newPassword: string) => http(stack, 'POST', '/api/v1/auth/password-reset/confirm', { body: { token, newPassword } });

  it('after a reset with one token, the other outstanding tokens of the account are dead', async () => {
    const user = await register(stack, `twotokens${Date.now() % 100000}`);
    expect((await request(email(user))).status).toBe(202);
    const first = await tokenFor(mailDir, email(user), seen);
    expect((await request(email(user))).status).toBe(202);
    const second = await tokenFor(mailDir, email(user), seen);
    expect((await confirm(second, 'a brand new passphrase 1')).status).toBe(204);
    expectError(await confirm(first, 'a brand new passphrase 2'), 400, 'invalid_request');
    expect((await http(stack, 'POST', '/api/v1/auth/login', { body: { login: user.username, password: 'a brand new passphrase 1' } })).status).toBe(200);
  });

  it('a password change ends the outstanding reset tokens', async () => {
    const user = await register(stack, `changed${Date.now() % 100000}`);
    expect((await request(email(user))).status).toBe(202);
    const token = await tokenFor(mailDir, email(user), seen);
    const changed = await http(stack, 'POST', '/api/v1/users/me/password', { token: user.accessToken, body: { currentPassword: user.password, newPassword: 'changed by the owner 1' } });
    expect(changed.status).toBe(204);
    expectError(await confirm(token, 'taken over by a thief 1'), 400, 'invalid_request');
    expect((await http(stack, 'POST', '/api/v1/auth/login', { body: { login: user.username, password: 'changed by the owner 1' } })).status).toBe(200);
  });

  it('deletes the reset mails an erased account left in the mail folder (issue 23, finding 11), and only those', async () => {
    const gone = await register(stack, `gone${Date.now() % 100000}`);
    const stays = await register(stack, `stays${Date.now() % 100000}`);
    for (const who of [gone, stays]) {
      expect((await request(email(who))).status).toBe(202);
      await tokenFor(mailDir, email(who), seen);
    }
    const mailsTo = async (who: Account) => {
      const out: string[] = [];
      for (const file of (await readdir(mailDir)).filter((f) => f.endsWith('.eml'))) {
        if ((await readFile(path.join(mailDir, file), 'utf8')).includes(email(who))) out.push(file);
      }
      return out;
    };
    expect(await mailsTo(gone)).not.toEqual([]);
    const erased = await http(stack, 'DELETE', '/api/v1/users/me', { token: gone.accessToken, body: { password: gone.password } });
    expect(erased.status).toBe(202);
    // The erasure answers once it is done, mail folder included.
    expect(await mailsTo(gone)).toEqual([]);
    expect(await mailsTo(stays)).not.toEqual([]);
  });

  it('throttles requests per address typed, known or not alike, and per client', async () => {
    const user = await register(stack, `flood${Date.now() % 100000}`);
    const known = await Promise.all(Array.from({ length: 6 }, () => request(email(user))));
    const nobody = `nobody-${Date.now()}@example.test`;
    const unknown = await Promise.all(Array.from({ length: 6 }, () => request(nobody)));
    for (const answers of [known, unknown]) {
      expect(answers.filter((a) => a.status === 202)).toHaveLength(3);
      for (const a of answers.filter((x) => x.status !== 202)) expectError(a, 429, 'rate_limited');
    }
    // This client has used its 11 (two, one and two above, three and three here): any next address is refused.
    expectError(await request(`someone-else-${Date.now()}@example.test`), 429, 'rate_limited');
  });

});
