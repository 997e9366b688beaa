import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, type Pool } from '@parley/pg';
import { projectionDatabase } from '@parley/testing';
import { AttemptThrottle, keyPart, LoginThrottle, REAUTH_PREFIX, sweepExpiredCounters } from './throttle.js';

/** The attempt counters on real Postgres: what an erasure forgets, and what the sweep deletes. */
const MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));

let pool: Pool;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ pool, cleanup } = await projectionDatabase((p) => migrate(p, 'users', MIGRATIONS)));
});
afterAll(() => cleanup?.());

const keys = async () => (await pool.query<{ key: string }>('SELECT key FROM users.login_failures ORDER BY key')).rows.map((r) => r.key);
const limits = { maxFailuresPerAccountAddress: 5, maxFailuresPerAddress: 30, slowdownAfter: 8, maxDelaySeconds: 3, windowSeconds: 600 };

describe('attempt counters', () => {
  it('forgets an account\'s login and re-authentication counters, and keeps the counts of mails to its address', async () => {
    await pool.query('DELETE FROM users.login_failures');
    const user = { id: '01900000-0000-7000-8000-00000000aaaa', username: 'forgotten', email: 'forgotten@example.test' };
    const logins = new LoginThrottle(pool, limits);
    const reauth = new LoginThrottle(pool, limits, REAUTH_PREFIX);
    await logins.reserve(user.username, '203.0.113.1');
    await reauth.reserve(user.id, '203.0.113.1');
    const mails = new AttemptThrottle(pool, 3600);
    await mails.reserve([{ key: `reset-account:${keyPart(user.email)}`, max: 3 }]);
    await mails.reserve([{ key: `verify-address:${keyPart(user.email)}`, max: 3 }]);

    await logins.forgetUser(user);
    const left = await keys();
    // Before: a `%account:` pattern took the mails' counts too (deleting an account reset them).
    expect(left).toContain(`reset-account:${keyPart(user.email)}`);
    expect(left).toContain(`verify-address:${keyPart(user.email)}`);
    // Nothing per account of the logins or the re-authentications.
    expect(left.filter((k) => /^(reauth-)?(account|pair|known):/.test(k))).toEqual([]);
  });

  it('sweeps the counters whose window ended longer ago than the longest window, and only those', async () => {
    await pool.query('DELETE FROM users.login_failures');
    await pool.query(
      `INSERT INTO users.login_failures (key, window_start, failures) VALUES
         ('old', now() - interval '2 hours', 3), ('current', now() - interval '10 minutes', 3), ('remembered', now() + interval '30 days', 0)`,
    );
    expect(await sweepExpiredCounters(pool, 3600)).toBe(1);
    expect(await keys()).toEqual(['current', 'remembered']);
  });
});
