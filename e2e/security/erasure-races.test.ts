import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, type Stack } from '../stack.js';

/**
 * Issue 23, finding 6: logins that raced DELETE /users/me returned tokens that kept working for up
 * to the access-token lifetime (the password was checked before the erasure, the session stored
 * after it had revoked them all). Now a session start and an erasure's start are ordered by a lock,
 * and a session cannot start once the erasure has begun.
 */
describe('logins racing an account erasure', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000', LOGIN_MAX_FAILURES_PER_ADDRESS: '1000', LOGIN_SLOWDOWN_AFTER_FAILURES: '1000' });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  for (const round of [1, 2, 3]) {
    it(`leaves no working token from a login that raced the erasure (round ${round})`, async () => {
      const user = await register(stack, `erased${round}x${Date.now() % 100000}`);
      const login = () => http(stack, 'POST', '/api/v1/auth/login', { body: { login: user.username, password: user.password } });
      // Logins before, during and after the erasure request, a few milliseconds apart.
      const logins: Promise<Awaited<ReturnType<typeof login>>>[] = [];
      for (let i = 0; i < 6; i++) {
        logins.push(login());
        await new Promise((r) => setTimeout(r, 5));
      }
      const erasure = http(stack, 'DELETE', '/api/v1/users/me', { token: user.accessToken, body: { password: user.password } });
      for (let i = 0; i < 12; i++) {
        logins.push(login());
        await new Promise((r) => setTimeout(r, 5));
      }
      expect((await erasure).status).toBe(202);
      const answers = await Promise.all(logins);
      for (const a of answers) expect([200, 401], JSON.stringify(a.body)).toContain(a.status);
      // Once the erasure is done, every token any of them got is refused.
      const tokens = answers.filter((a) => a.status === 200).map((a) => a.body.accessToken as string);
      for (const token of [user.accessToken, ...tokens]) {
        await eventually(async () => ((await http(stack, 'GET', '/api/v1/users/me', { token })).status === 401 ? true : undefined), 5_000, 'token refused');
      }
      // And no new one can be had.
      expect((await login()).status).toBe(401);
    });
  }
});
