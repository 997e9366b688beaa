import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, register, startStack, type Account, type HttpAnswer, type Stack } from '../stack.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** What a client can compare between two answers: status, body, and which headers were sent. */
const shape = (a: HttpAnswer) => ({ status: a.status, body: a.body, headers: [...a.headers.keys()].filter((k) => k !== 'date').sort() });

async function timed(request: () => Promise<HttpAnswer>): Promise<{ ms: number; answer: HttpAnswer }> {
  const started = performance.now();
  const answer = await request();
  return { ms: performance.now() - started, answer };
}

/**
 * User enumeration (issue 10): login and the reset request answer a known and an unknown account
 * alike, in status, body, headers and time. Login runs a dummy argon2 verification for an unknown
 * account; without it an unknown login would answer several times faster. Throttling is raised
 * here so the samples are all answered (sessions.test.ts proves the throttle itself).
 */
describe('user enumeration: known and unknown accounts look alike', () => {
  let stack: Stack;
  let known: Account;

  beforeAll(async () => {
    stack = await startStack({
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '100000',
      LOGIN_MAX_FAILURES_PER_ADDRESS: '100000',
      LOGIN_SLOWDOWN_AFTER_FAILURES: '100000',
      RESET_MAX_REQUESTS_PER_ACCOUNT: '100000',
      RESET_MAX_REQUESTS_PER_ADDRESS: '100000',
    });
    known = await register(stack, 'enum_known');
  });
  afterAll(async () => stack?.stop());

  const login = (who: string, password: string) => http(stack, 'POST', '/api/v1/auth/login', { body: { login: who, password } });

  it('answers a wrong password and an unknown user identically, by username and by e-mail', async () => {
    const wrongName = await login(known.username, 'not the password');
    expect(wrongName.status).toBe(401);
    expect(wrongName.body.error.code).toBe('invalid_credentials');
    for (const answer of [
      await login('enum_nobody', 'not the password'),
      await login(`${known.username}@example.test`, 'not the password'),
      await login('nobody@example.test', 'not the password'),
      await login(known.username.toUpperCase(), 'not the password'),
    ]) {
      expect(shape(answer)).toEqual(shape(wrongName));
    }
  });

  it('takes as long for an unknown user as for a wrong password (medians within a factor of 2.5)', async () => {
    const unknown: number[] = [];
    const wrong: number[] = [];
    // Interleaved, so load from the other test files falls on both series alike; two warm-ups.
    for (let i = 0; i < 17; i++) {
      const a = await timed(() => login(`enum_ghost_${i}`, 'not the password'));
      const b = await timed(() => login(known.username, 'not the password'));
      expect([a.answer.status, b.answer.status]).toEqual([401, 401]);
      if (i < 2) continue;
      unknown.push(a.ms);
      wrong.push(b.ms);
    }
    const [u, w] = [median(unknown), median(wrong)];
    console.log(`login timing: unknown user median ${u.toFixed(1)} ms, wrong password median ${w.toFixed(1)} ms`);
    expect(Math.max(u, w) / Math.min(u, w)).toBeLessThan(2.5);
  });

  it('answers a reset request for a known and an unknown address alike, and as fast', async () => {
    const request = (email: string) => http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email } });
    const unknown: number[] = [];
    const knownTimes: number[] = [];
    for (let i = 0; i < 9; i++) {
      const a = await timed(() => request(`ghost${i}@example.test`));
      const b = await timed(() => request(`${known.username}@example.test`));
      expect(shape(a.answer)).toEqual(shape(b.answer));
      expect(a.answer.status).toBe(202);
      unknown.push(a.ms);
      knownTimes.push(b.ms);
    }
    const [u, k] = [median(unknown), median(knownTimes)];
    console.log(`reset request timing: unknown median ${u.toFixed(1)} ms, known median ${k.toFixed(1)} ms`);
    // Both are a few milliseconds (the mail goes after the answer); a 20 ms floor keeps jitter from
    // counting as a ratio.
    expect((Math.max(u, k) + 20) / (Math.min(u, k) + 20)).toBeLessThan(2.5);
  });
});
