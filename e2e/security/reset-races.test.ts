import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, register, startStack, type Account, type Stack } from '../stack.js';
import { expectError, tokenFor } from './helpers.js';

/**
 * Reset-token reuse and races (issue 10): a token confirmed by many requests at once is used
 * exactly once, whichever wins; only the winner's password works afterwards; and a used token
 * answers exactly like a token that never existed. (password.test.ts covers single use in
 * sequence, expiry, and the token staying out of logs.)
 */
describe('password-reset tokens under concurrent use', () => {
  let stack: Stack;
  let mailDir: string;
  const seen = new Set<string>();

  beforeAll(async () => {
    mailDir = await mkdtemp(path.join(os.tmpdir(), 'parley-reset-race-'));
    // Throttling raised: every loser's password is tried once (sessions.test.ts proves the throttle).
    stack = await startStack({ MAIL_DIR: mailDir, LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000', LOGIN_MAX_FAILURES_PER_ADDRESS: '1000', LOGIN_SLOWDOWN_AFTER_FAILURES: '1000' });
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(mailDir, { recursive: true, force: true });
  });

  const confirm = (token: string, newPassword: string) => http(stack, 'POST', '/api/v1/auth/password-reset/confirm', { body: { token, newPassword } });
  const login = (who: Account, password: string) => http(stack, 'POST', '/api/v1/auth/login', { body: { login: who.username, password } });

  for (const round of [1, 2, 3]) {
    it(`lets exactly one of eight simultaneous confirms of one token win (round ${round})`, async () => {
      const user = await register(stack, `race_${round}_${Date.now() % 100000}`);
      expect((await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: `${user.username}@example.test` } })).status).toBe(202);
      const token = await tokenFor(mailDir, `${user.username}@example.test`, seen);
      const passwords = Array.from({ length: 8 }, (_, i) => `racing passphrase number ${i} ${round}`);
      const answers = await Promise.all(passwords.map((p) => confirm(token, p)));
      const winners = answers.flatMap((a, i) => (a.status === 204 ? [i] : []));
      expect(winners, JSON.stringify(answers.map((a) => [a.status, a.body]))).toHaveLength(1);
      for (const loser of answers.filter((a) => a.status !== 204)) expectError(loser, 400, 'invalid_request');
      // Only the winner's password opens the account; the old one and the losers' do not.
      const winner = winners[0]!;
      expect((await login(user, passwords[winner]!)).status).toBe(200);
      for (const [i, p] of passwords.entries()) if (i !== winner) expect((await login(user, p)).status, `loser ${i}`).toBe(401);
      expect((await login(user, user.password)).status).toBe(401);
    });
  }

  it('answers a used token exactly like one that never existed, and a second request gives a new working token', async () => {
    const user = await register(stack, `reuse_${Date.now() % 100000}`);
    const email = `${user.username}@example.test`;
    await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email } });
    const token = await tokenFor(mailDir, email, seen);
    expect((await confirm(token, 'first new passphrase')).status).toBe(204);
    const reused = await confirm(token, 'second new passphrase');
    const never = await confirm('A'.repeat(43), 'second new passphrase');
    expectError(reused, 400, 'invalid_request');
    expect(reused.body).toEqual(never.body);
    expect((await login(user, 'first new passphrase')).status).toBe(200);
    // Two outstanding tokens, confirmed at once with the same password: both may work once each
    // (each is its own single-use token), neither twice.
    await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email } });
    const t1 = await tokenFor(mailDir, email, seen);
    const twice = await Promise.all([confirm(t1, 'third new passphrase'), confirm(t1, 'third new passphrase')]);
    expect(twice.map((a) => a.status).sort(), JSON.stringify(twice.map((a) => a.body))).toEqual([204, 400]);
  });
});
