import type { Pool } from '@parley/pg';

export interface ThrottleLimits {
  maxFailuresPerAccount: number;
  maxFailuresPerAddress: number;
  windowSeconds: number;
}

/**
 * Brute-force protection for login: failed attempts are counted per account and per client
 * address in fixed windows; over the limit, login answers 429 with Retry-After until the window
 * ends, without checking the password. Counters live in Postgres so that every replica sees them
 * and they survive a Redis outage. Unknown accounts are counted like known ones (keyed by the
 * login as typed), so throttling reveals nothing about which accounts exist.
 */
export class LoginThrottle {
  constructor(
    private readonly pool: Pool,
    private readonly limits: ThrottleLimits,
  ) {}

  /** Seconds until the caller may try again, or null when not throttled. */
  async retryAfter(accountKey: string, address: string): Promise<number | null> {
    const { rows } = await this.pool.query<{ key: string; failures: number; left: number }>(
      `SELECT key, failures, ceil(extract(epoch FROM window_start + make_interval(secs => $2) - now()))::int AS left
         FROM users.login_failures
        WHERE key = ANY($1) AND window_start > now() - make_interval(secs => $2)`,
      [[`account:${accountKey}`, `address:${address}`], this.limits.windowSeconds],
    );
    let wait: number | null = null;
    for (const row of rows) {
      const max = row.key.startsWith('account:') ? this.limits.maxFailuresPerAccount : this.limits.maxFailuresPerAddress;
      if (row.failures >= max) wait = Math.max(wait ?? 0, Math.max(1, row.left));
    }
    return wait;
  }

  async recordFailure(accountKey: string, address: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO users.login_failures (key, window_start, failures)
       SELECT k, now(), 1 FROM unnest($1::text[]) AS k
       ON CONFLICT (key) DO UPDATE SET
         failures = CASE WHEN users.login_failures.window_start <= now() - make_interval(secs => $2) THEN 1 ELSE users.login_failures.failures + 1 END,
         window_start = CASE WHEN users.login_failures.window_start <= now() - make_interval(secs => $2) THEN now() ELSE users.login_failures.window_start END`,
      [[`account:${accountKey}`, `address:${address}`], this.limits.windowSeconds],
    );
  }

  /** A successful login clears the account's counter (not the address's: one good password must not unlock guessing others). */
  async recordSuccess(accountKey: string): Promise<void> {
    await this.pool.query('DELETE FROM users.login_failures WHERE key = $1', [`account:${accountKey}`]);
  }
}
