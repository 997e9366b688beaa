import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, register, startStack, type Stack } from '../stack.js';

/**
 * Issue 23, finding 3: the claim subject lower-cased with JavaScript and the unique index with
 * PostgreSQL's lower(), which differ for `İ`: two registrations whose e-mails differ only there
 * both won their claims, collided in the index, and stopped the users projector (503s for
 * everyone, again on every rebuild). Now one function (identityKey) keys both.
 */
describe('identity normalisation agrees between claims and the database', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('registers e-mails that differ only in a dotted capital I as two accounts, and the projector keeps going', async () => {
    const n = Date.now() % 100000;
    const body = (username: string, email: string) => ({ username, email, password: 'a long enough passphrase' });
    const [dotted, plain] = await Promise.all([
      http(stack, 'POST', '/api/v1/auth/register', { body: body(`dotted${n}`, `İvan${n}@example.test`) }),
      http(stack, 'POST', '/api/v1/auth/register', { body: body(`plain${n}`, `ivan${n}@example.test`) }),
    ]);
    expect([dotted.status, plain.status]).toEqual([201, 201]);
    // Both log in with the address as typed, and by another casing of it.
    for (const [email, username] of [[`İVAN${n}@EXAMPLE.TEST`, `dotted${n}`], [`IVAN${n}@example.test`, `plain${n}`]]) {
      const login = await http(stack, 'POST', '/api/v1/auth/login', { body: { login: email, password: 'a long enough passphrase' } });
      expect(login.status, email).toBe(200);
      expect(login.body.user.username).toBe(username);
    }
    // The same address in another case is taken.
    const again = await http(stack, 'POST', '/api/v1/auth/register', { body: body(`again${n}`, `IVAN${n}@EXAMPLE.TEST`) });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('email_taken');
    // Everyone else's changes still get through the users projector.
    const later = await register(stack);
    expect((await http(stack, 'PATCH', '/api/v1/users/me', { token: later.accessToken, body: { displayName: 'Still Projected' } })).status).toBe(200);
  });
});
