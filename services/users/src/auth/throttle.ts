import { withTransaction, type Pool } from '@parley/pg';

export interface ThrottleLimits {
  maxFailuresPerAccount: number;
  maxFailuresPerAddress: number;
  windowSeconds: number;
}

/**
 * Attempts counted per account and per client address in fixed windows: logins and password
 * confirmations (brute-force protection), and password-reset requests (each one a mail; their own
 * key prefix). Over a limit the caller answers 429 with Retry-After until the window ends, for a
 * login without checking the password. Counters live in Postgres so that every replica sees them and they
 * survive a Redis outage. Unknown accounts are counted like known ones (keyed by the login as
 * typed), so throttling reveals nothing about which accounts exist.
 *
 * An attempt is counted *before* the password is verified (`reserve`), under a lock, and given
 * back when it succeeds: checking the limit first and recording the failure after the verification
 * let a burst of concurrent guesses all pass the check together (issue 23, finding 1: 40 concurrent
 * guesses were all verified), and made the throttle a lever for argon2 CPU exhaustion.
 */
export class AttemptThrottle {
  constructor(
    private readonly pool: Pool,
    private readonly limits: ThrottleLimits,
    /** Keeps this throttle's counters apart from another's in the same table ('' for logins). */
    private readonly prefix = '',
  ) {}

  /**
   * Counts one attempt against the account and the address, atomically with the check: returns the
   * seconds to wait (nothing counted) when either is at its limit, else null (the attempt is
   * counted as a failure until recordSuccess gives it back).
   */
  async reserve(accountKey: string, address: string): Promise<number | null> {
    const keys = [`${this.prefix}account:${accountKey}`, `${this.prefix}address:${address}`].sort();
    return withTransaction(this.pool, async (tx) => {
      // Reservations of the same account or address wait for each other here, taking the locks in
      // one order (the keys sorted): row locks taken by INSERT … ON CONFLICT and SELECT … FOR UPDATE
      // deadlocked under a burst, when a success deleted the account's row in between.
      for (const key of keys) await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 8))', [key]);
      await tx.query('INSERT INTO users.login_failures (key, window_start, failures) SELECT k, now(), 0 FROM unnest($1::text[]) AS k ON CONFLICT (key) DO NOTHING', [keys]);
      const { rows } = await tx.query<{ key: string; failures: number; left: number; expired: boolean }>(
        `SELECT key, failures, ceil(extract(epoch FROM window_start + make_interval(secs => $2) - now()))::int AS left,
                window_start <= now() - make_interval(secs => $2) AS expired
           FROM users.login_failures WHERE key = ANY($1)`,
        [keys, this.limits.windowSeconds],
      );
      let wait: number | null = null;
      for (const row of rows) {
        const max = row.key.startsWith(`${this.prefix}account:`) ? this.limits.maxFailuresPerAccount : this.limits.maxFailuresPerAddress;
        if (!row.expired && row.failures >= max) wait = Math.max(wait ?? 0, Math.max(1, row.left));
      }
      if (wait !== null) return wait;
      await tx.query(
        `UPDATE users.login_failures SET
           failures = CASE WHEN window_start <= now() - make_interval(secs => $2) THEN 1 ELSE failures + 1 END,
           window_start = CASE WHEN window_start <= now() - make_interval(secs => $2) THEN now() ELSE window_start END
         WHERE key = ANY($1)`,
        [keys, this.limits.windowSeconds],
      );
      return null;
    });
  }

  /**
   * A successful attempt: the account's counter is cleared, and the address gets its reserved
   * attempt back (not more: one good password must not unlock guessing others from there).
   */
  async recordSuccess(accountKey: string, address?: string): Promise<void> {
    await this.pool.query('DELETE FROM users.login_failures WHERE key = $1', [`${this.prefix}account:${accountKey}`]);
    if (address !== undefined) {
      await this.pool.query('UPDATE users.login_failures SET failures = GREATEST(failures - 1, 0) WHERE key = $1', [`${this.prefix}address:${address}`]);
    }
  }
}
