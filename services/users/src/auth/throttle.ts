import { createHash } from 'node:crypto';
import { clientNetwork, identityKey } from '@parley/contracts';
import { withTransaction, type Pool, type Queryable } from '@parley/pg';

/** A counter with a hard limit: at `max` attempts in the window, the next waits for the window's end. */
export interface Limit {
  key: string;
  max: number;
}

/**
 * A counter that slows down instead of locking out (issue 23, finding 2): past `after` attempts in
 * the window, each further one waits 2^(n - after) seconds after the last, at most `maxDelaySeconds`.
 */
export interface Slowdown {
  key: string;
  after: number;
  maxDelaySeconds: number;
}

/**
 * Counts attempts in fixed windows, in Postgres (every replica sees them, and they hold when Redis
 * is down): logins and password confirmations (brute force), password-reset requests (a mail each).
 *
 * An attempt is counted *before* the password is verified (`reserve`), under advisory locks taken
 * in key order, and given back when it succeeds: checking first and recording the failure after
 * the verification let a burst of concurrent guesses all pass together (issue 23, finding 1), and
 * made the throttle a lever for argon2 CPU exhaustion.
 *
 * Keys carry a hash of what they count (an account as typed, a client address), never the name or
 * address itself: the table must not become a list of who tried which e-mail address.
 */
export class AttemptThrottle {
  constructor(
    readonly pool: Pool,
    private readonly windowSeconds: number,
  ) {}

  /**
   * Counts one attempt against every limit (and the slowdown, unless null), atomically with the
   * check: returns the seconds to wait (nothing counted) when any is at its limit or delay, else
   * null (the attempt counts as a failure until `giveBack`).
   */
  async reserve(limits: Limit[], slowdown: Slowdown | null = null): Promise<number | null> {
    const keys = [...new Set([...limits.map((l) => l.key), ...(slowdown ? [slowdown.key] : [])])].sort();
    return withTransaction(this.pool, async (tx) => {
      // Reservations of the same key wait for each other here, taking the locks in one order: row
      // locks taken by INSERT … ON CONFLICT and SELECT … FOR UPDATE deadlocked under a burst.
      for (const key of keys) await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 8))', [key]);
      await tx.query('INSERT INTO users.login_failures (key, window_start, failures) SELECT k, now(), 0 FROM unnest($1::text[]) AS k ON CONFLICT (key) DO NOTHING', [keys]);
      const { rows } = await tx.query<{ key: string; failures: number; left: number; expired: boolean; since_last: number | null }>(
        `SELECT key, failures, ceil(extract(epoch FROM window_start + make_interval(secs => $2) - now()))::int AS left,
                window_start <= now() - make_interval(secs => $2) AS expired,
                extract(epoch FROM now() - last_failure)::float8 AS since_last
           FROM users.login_failures WHERE key = ANY($1)`,
        [keys, this.windowSeconds],
      );
      const byKey = new Map(rows.map((r) => [r.key, r]));
      let wait: number | null = null;
      for (const limit of limits) {
        const row = byKey.get(limit.key)!;
        if (!row.expired && row.failures >= limit.max) wait = Math.max(wait ?? 0, Math.max(1, row.left));
      }
      if (slowdown) {
        const row = byKey.get(slowdown.key)!;
        if (!row.expired && row.failures >= slowdown.after && row.since_last !== null) {
          const delay = Math.min(2 ** (row.failures - slowdown.after), slowdown.maxDelaySeconds);
          const left = Math.ceil(delay - row.since_last);
          if (left > 0) wait = Math.max(wait ?? 0, left);
        }
      }
      if (wait !== null) return wait;
      await tx.query(
        `UPDATE users.login_failures SET
           failures = CASE WHEN window_start <= now() - make_interval(secs => $2) THEN 1 ELSE failures + 1 END,
           window_start = CASE WHEN window_start <= now() - make_interval(secs => $2) THEN now() ELSE window_start END,
           last_failure = now()
         WHERE key = ANY($1)`,
        [keys, this.windowSeconds],
      );
      return null;
    });
  }

  /**
   * Runs `work` holding the advisory locks of `keys`, taken in sorted order like `reserve` takes
   * them: every writer of these rows goes through the same locks in the same order, so none can
   * deadlock with another (a two-row UPDATE locks its rows in no defined order; found by the
   * login/erasure race test).
   */
  async locked(keys: string[], work: (tx: Queryable) => Promise<void>): Promise<void> {
    if (keys.length === 0) return;
    await withTransaction(this.pool, async (tx) => {
      for (const key of [...new Set(keys)].sort()) await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 8))', [key]);
      await work(tx);
    });
  }

  /**
   * After a success: clears `cleared`, gives one reserved attempt back to each of `givenBack` (a
   * success must not unlock guessing others), and remembers `known` for `days` (a known address).
   */
  async settle(cleared: string[], givenBack: string[], known?: { key: string; days: number }): Promise<void> {
    await this.locked([...cleared, ...givenBack, ...(known ? [known.key] : [])], async (tx) => {
      await tx.query('DELETE FROM users.login_failures WHERE key = ANY($1)', [cleared]);
      await tx.query('UPDATE users.login_failures SET failures = GREATEST(failures - 1, 0) WHERE key = ANY($1)', [givenBack]);
      if (known) {
        await tx.query(
          `INSERT INTO users.login_failures (key, window_start, failures) VALUES ($1, now() + make_interval(days => $2), 0)
           ON CONFLICT (key) DO UPDATE SET window_start = EXCLUDED.window_start`,
          [known.key, known.days],
        );
      }
    });
  }

  async remembered(key: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('SELECT 1 FROM users.login_failures WHERE key = $1 AND window_start > now()', [key]);
    return (rowCount ?? 0) > 0;
  }
}

/**
 * Deletes the counters whose window ended more than `longestWindowSeconds` ago (a remembered
 * address's too, once its days are over): they count for nothing any more, and each names an
 * account, an address or a client in a hashed form. Counters of mails to an address outlive an
 * erasure on purpose (LoginThrottle.forget), for their window and no longer.
 */
export async function sweepExpiredCounters(pool: Pool, longestWindowSeconds: number): Promise<number> {
  const { rowCount } = await pool.query('DELETE FROM users.login_failures WHERE window_start < now() - make_interval(secs => $1)', [longestWindowSeconds]);
  return rowCount ?? 0;
}

/** A stable, non-reversible stand-in for a name or address in a counter's key. */
export const keyPart = (value: string): string => createHash('sha256').update(value).digest('hex').slice(0, 32);

/** The part of a client address that per-address limits count (clientNetwork: IPv6 by its /64), hashed. */
export function addressKeyPart(address: string): string {
  return keyPart(clientNetwork(address));
}

export interface LoginLimits {
  /** Failed attempts on one account from one client address before that address waits out the window. */
  maxFailuresPerAccountAddress: number;
  /** Failed attempts from one client address, on any accounts, before it waits out the window. */
  maxFailuresPerAddress: number;
  /** Failed attempts on one account, from anywhere, before unknown addresses are slowed down. */
  slowdownAfter: number;
  maxDelaySeconds: number;
  windowSeconds: number;
}

/** Key prefix of re-authentication's counters (confirm-password.ts). */
export const REAUTH_PREFIX = 'reauth-';
/** The LoginThrottles' prefixes: logins (''), re-authentication. */
const LOGIN_FAMILY = ['', REAUTH_PREFIX];

/** How long an address that signed in to an account stays exempt from that account's slowdown. */
const KNOWN_ADDRESS_DAYS = 30;

/**
 * The login throttle (and re-authentication's, keyed by user id, under REAUTH_PREFIX): a guesser is stopped per
 * (account, address) and per address, never by locking the owner out (issue 23, finding 2). Five
 * wrong passwords from one address used to lock the account for everyone for 15 minutes, the
 * owner with the right password included. Now:
 *
 * - (account, address): `maxFailuresPerAccountAddress` in the window, then that address waits;
 * - address: `maxFailuresPerAddress` in the window across accounts (password spraying);
 * - account, from all addresses together: past `slowdownAfter`, addresses that never signed in to
 *   the account wait a doubling delay (capped at `maxDelaySeconds`) after each failure. An address
 *   from which the right password was given in the last 30 days is not slowed: a distributed
 *   attack on an account costs its owner nothing at home, at most a minute on a new device.
 *
 * The account is what was typed (identityKey of the login, hashed), known or not: a counter shared
 * by an account's username and e-mail told an attacker which address belonged to which username
 * (issue 23, finding 5), and unknown logins behave exactly like known ones.
 */
export class LoginThrottle {
  private readonly attempts: AttemptThrottle;
  constructor(
    pool: Pool,
    private readonly limits: LoginLimits,
    /** Keeps these counters apart from another LoginThrottle's ('' for logins). */
    private readonly prefix = '',
  ) {
    this.attempts = new AttemptThrottle(pool, limits.windowSeconds);
  }

  private keys(account: string, address: string) {
    const a = keyPart(account);
    const ip = addressKeyPart(address);
    return {
      pair: `${this.prefix}pair:${a}:${ip}`,
      address: `${this.prefix}address:${ip}`,
      account: `${this.prefix}account:${a}`,
      known: `${this.prefix}known:${a}:${ip}`,
    };
  }

  async reserve(account: string, address: string): Promise<number | null> {
    const k = this.keys(account, address);
    const known = await this.attempts.remembered(k.known);
    return this.attempts.reserve(
      [
        { key: k.pair, max: this.limits.maxFailuresPerAccountAddress },
        { key: k.address, max: this.limits.maxFailuresPerAddress },
      ],
      { key: k.account, after: known ? Number.MAX_SAFE_INTEGER : this.limits.slowdownAfter, maxDelaySeconds: this.limits.maxDelaySeconds },
    );
  }

  /** The right password: this address's counters for the account are cleared, the others get the attempt back. */
  async recordSuccess(account: string, address: string): Promise<void> {
    const k = this.keys(account, address);
    await this.attempts.settle([k.pair], [k.address, k.account], { key: k.known, days: KNOWN_ADDRESS_DAYS });
  }

  /**
   * Every counter of a user, under each name it can be typed as (username, e-mail) and its id
   * (re-authentication): after a reset (mailbox control proven) or an erasure (nothing kept).
   */
  async forgetUser(user: { id: string; username: string; email: string }): Promise<void> {
    await this.forget([user.id, identityKey(user.username), identityKey(user.email)]);
  }

  /**
   * Every counter of these accounts, from every address, of logins and of re-authentications. Not
   * the counters of mails to an address (`reset-`, `verify-`): those bound what reaches a
   * mailbox, whoever holds the account; a `%account:` pattern cleared them too, so deleting a
   * throwaway account and registering it again mailed the same address without end.
   */
  async forget(accounts: string[]): Promise<void> {
    const parts = accounts.map(keyPart);
    const patterns = LOGIN_FAMILY.flatMap((p) => parts.flatMap((a) => [`${p}account:${a}`, `${p}pair:${a}:%`, `${p}known:${a}:%`]));
    const { rows } = await this.attempts.pool.query<{ key: string }>('SELECT key FROM users.login_failures WHERE key LIKE ANY($1)', [patterns]);
    const keys = rows.map((r) => r.key);
    await this.attempts.locked(keys, async (tx) => {
      await tx.query('DELETE FROM users.login_failures WHERE key = ANY($1)', [keys]);
    });
  }
}
