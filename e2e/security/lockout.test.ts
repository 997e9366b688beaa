import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register, startStack, type Account, type Stack } from '../stack.js';

/**
 * Issue 23, finding 2: five wrong guesses from anywhere locked the owner out for 15 minutes, the
 * right password included (usernames are public). Now a guesser is stopped per (account, address)
 * and per address; the account as a whole only slows down addresses that never signed in to it.
 * And finding 5, in part: one counter for an account's username and e-mail told whoever hit the
 * limit on one that the other belonged to the same account.
 *
 * Client addresses come from X-Forwarded-For, which the gateway believes from loopback here.
 */
describe('a guesser cannot lock the owner out', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      TRUSTED_PROXIES: 'loopback',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '5',
      LOGIN_MAX_FAILURES_PER_ADDRESS: '30',
      LOGIN_SLOWDOWN_AFTER_FAILURES: '8',
      LOGIN_MAX_DELAY_SECONDS: '3',
      LOGIN_FAILURE_WINDOW_SECONDS: '600',
    });
  });
  afterAll(async () => stack?.stop());

  const login = async (login: string, password: string, from: string) => {
    const answer = await fetch(`${stack.baseUrl}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': from },
      body: JSON.stringify({ login, password }),
    });
    return { status: answer.status, retryAfter: Number(answer.headers.get('retry-after') ?? 0) };
  };

  it('stops the guessing address after five failures, while the owner elsewhere signs in', async () => {
    const owner = await register(stack);
    for (let i = 0; i < 5; i++) expect((await login(owner.username, `wrong guess ${i}`, '203.0.113.10')).status).toBe(401);
    expect((await login(owner.username, owner.password, '203.0.113.10')).status).toBe(429);
    // Before: 429 here too, for 15 minutes.
    expect((await login(owner.username, owner.password, '198.51.100.20')).status).toBe(200);
  });

  it('counts an IPv6 client by its /64: stepping through its own addresses does not reset the count', async () => {
    const owner = await register(stack);
    // Five guesses, each from another address of one /64 (written in different forms).
    const from = ['2001:db8:aa:1::1', '2001:db8:aa:1::2', '2001:db8:aa:1:ffff::9', '2001:0db8:00aa:0001:0:0:0:3', '2001:db8:aa:1:1:2:3:4'];
    for (const [i, address] of from.entries()) expect((await login(owner.username, `v6 guess ${i}`, address)).status).toBe(401);
    // Before, each address had its own count: a sixth address of the /64 got another guess.
    expect((await login(owner.username, 'v6 guess 5', '2001:db8:aa:1::77')).status).toBe(429);
    // Another /64 is another client.
    expect((await login(owner.username, owner.password, '2001:db8:aa:2::1')).status).toBe(200);
  });

  it('slows a distributed attack on one account down for new addresses only, never for where the owner signed in', async () => {
    const owner: Account = await register(stack);
    expect((await login(owner.username, owner.password, '198.51.100.30')).status).toBe(200);
    // Eight guesses from eight addresses: under every per-address limit.
    for (let i = 0; i < 8; i++) expect((await login(owner.username, `spread guess ${i}`, `203.0.113.${100 + i}`)).status).toBe(401);
    // A ninth address now waits a second (2^0) after the last failure; once it has, its guess counts.
    const slowed = await login(owner.username, 'another guess', '203.0.113.150');
    expect(slowed.status).toBe(429);
    expect(slowed.retryAfter).toBe(1);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await login(owner.username, 'another guess', '203.0.113.150')).status).toBe(401);
    // Nine failures: the next new address waits two seconds (doubling, at most 3 s here)…
    const doubled = await login(owner.username, 'yet another', '203.0.113.151');
    expect(doubled.status).toBe(429);
    expect(doubled.retryAfter).toBe(2);
    // …and so does the owner on a new device, but no longer.
    const fresh = await login(owner.username, owner.password, '198.51.100.31');
    expect(fresh.status).toBe(429);
    expect(fresh.retryAfter).toBeLessThanOrEqual(2);
    // The owner's own address is not slowed at all.
    expect((await login(owner.username, owner.password, '198.51.100.30')).status).toBe(200);
    await new Promise((r) => setTimeout(r, fresh.retryAfter * 1000 + 100));
    expect((await login(owner.username, owner.password, '198.51.100.31')).status).toBe(200);
  });

  it("does not tell which e-mail address belongs to a username it has throttled", async () => {
    const owner = await register(stack);
    const email = `${owner.username}@example.test`;
    for (let i = 0; i < 5; i++) expect((await login(owner.username, `wrong guess ${i}`, '203.0.113.200')).status).toBe(401);
    expect((await login(owner.username, 'one more', '203.0.113.200')).status).toBe(429);
    // Before: 429 for the account's e-mail (one counter per account), 401 for anyone else's.
    expect((await login(email, 'wrong again', '203.0.113.200')).status).toBe(401);
    expect((await login(`someone-else-${owner.username}@example.test`, 'wrong again', '203.0.113.200')).status).toBe(401);
  });

  it('does not let logins typed as a user\'s id lock that user out of changing their password', async () => {
    const owner = await register(stack);
    // A user id is public (profiles, chat members). Typed as a login name it matches no account,
    // but it counted on the counters re-authentication keeps by user id.
    for (let i = 0; i < 5; i++) expect((await login(owner.id, `wrong guess ${i}`, '203.0.113.220')).status).toBe(401);
    const change = await fetch(`${stack.baseUrl}/api/v1/users/me/password`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.220', authorization: `Bearer ${owner.accessToken}` },
      body: JSON.stringify({ currentPassword: owner.password, newPassword: 'a new passphrase for the owner' }),
    });
    // Before: 429 (the owner shares the guesser's address, as behind one NAT).
    expect(change.status).toBe(204);
  });

  it('throttles wrong current passwords of a signed-in account on counters of their own', async () => {
    const owner = await register(stack);
    const change = (currentPassword: string) =>
      fetch(`${stack.baseUrl}/api/v1/users/me/password`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.221', authorization: `Bearer ${owner.accessToken}` },
        body: JSON.stringify({ currentPassword, newPassword: 'never becomes the password' }),
      });
    for (let i = 0; i < 5; i++) expect((await change(`stolen token guess ${i}`)).status).toBe(401);
    expect((await change(owner.password)).status).toBe(429);
    // The logins' counters are apart: the owner signs in from there.
    expect((await login(owner.username, owner.password, '203.0.113.221')).status).toBe(200);
  });
});
