import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, register, startStack, type Stack } from '../stack.js';
import { expectError } from './helpers.js';

/**
 * A refresh token that is not the session's current secret is followed along the session's chain
 * of rotations (up to 3,000 hashes) to tell a stolen token from a made-up one. The endpoint is
 * public: such refreshes are counted per client, as failed logins are, so that made-up secrets
 * cannot keep the users service busy. The owner's own refreshes never count.
 */
describe('refreshes with a secret that is not the current one', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ LOGIN_MAX_FAILURES_PER_ADDRESS: '3' });
  });
  afterAll(async () => stack?.stop());

  it('are refused with 429 past the per-client budget, while the current secret still refreshes', async () => {
    const user = await register(stack);
    const rotated = await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: user.refreshToken } });
    expect(rotated.status).toBe(200);
    const sessionId = user.refreshToken.split('.')[0];
    const madeUp = (i: number) => `${sessionId}.${String(i).padStart(43, 'x')}`;
    for (let i = 0; i < 3; i++) expectError(await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: madeUp(i) } }), 401);
    // Before: 401 again, each after the whole walk.
    expectError(await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: madeUp(3) } }), 429, 'rate_limited');
    expect((await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: rotated.body.refreshToken } })).status).toBe(200);
  });
});
