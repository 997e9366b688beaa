import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startStack, type Stack } from '../stack.js';
import { expectError } from './helpers.js';

/**
 * The mails Parley sends to an address are bounded per address, whoever asks for them: an attacker
 * who registers with someone else's address, uses up its counts, deletes the account and registers
 * again must not start from zero (the erasure cleared the reset counter of the address, and every
 * new account had a fresh verification count).
 */
describe('mails to one address stay bounded across accounts that come and go', () => {
  let stack: Stack;
  let mailDir: string;
  beforeAll(async () => {
    mailDir = await mkdtemp(path.join(os.tmpdir(), 'parley-mail-limits-'));
    stack = await startStack({ MAIL_DIR: mailDir, RESET_MAX_REQUESTS_PER_ACCOUNT: '3', VERIFY_EMAIL_MAX_REQUESTS: '3' });
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(mailDir, { recursive: true, force: true });
  });

  const registerAs = async (username: string, email: string) => {
    const answer = await http(stack, 'POST', '/api/v1/auth/register', { body: { username, email, password: `pw-${username}-long-enough` } });
    expect(answer.status).toBe(201);
    return { id: answer.body.user.id as string, token: answer.body.accessToken as string, password: `pw-${username}-long-enough` };
  };

  it('keeps counting reset requests and verification mails to an address after its account is deleted and made again', async () => {
    const victim = `victim-${Date.now()}@example.test`;
    const first = await registerAs(`ml_first${Date.now() % 100000}`, victim);
    // The registration's mail and the three resends an account may ask for: the address's four.
    for (let i = 0; i < 3; i++) expect((await http(stack, 'POST', '/api/v1/users/me/email/verification', { token: first.token })).status).toBe(202);
    expectError(await http(stack, 'POST', '/api/v1/users/me/email/verification', { token: first.token }), 429, 'rate_limited');
    for (let i = 0; i < 3; i++) expect((await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: victim } })).status).toBe(202);
    expectError(await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: victim } }), 429, 'rate_limited');

    expect((await http(stack, 'DELETE', '/api/v1/users/me', { token: first.token, body: { password: first.password } })).status).toBe(202);
    const again = await registerAs(`ml_again${Date.now() % 100000}`, victim);
    // Before: 202 to both, and the count started again.
    expectError(await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: victim } }), 429, 'rate_limited');
    expectError(await http(stack, 'POST', '/api/v1/users/me/email/verification', { token: again.token }), 429, 'rate_limited');
  });
});
