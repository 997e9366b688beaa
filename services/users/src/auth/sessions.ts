import { withTransaction, type Pool } from '@parley/pg';
import { hashSecret, sameHash } from './refresh-tokens.js';

/** SQL for users.sessions. */
export interface SessionRow {
  id: string;
  user_id: string;
  refresh_hash: Buffer;
  previous_hash: Buffer | null;
  expires_at: Date;
  revoked_at: Date | null;
}

/**
 * Starts a session, unless the account's erasure has begun: returns false then. Under the shared
 * side of the erasure fence, with the check in a statement after the lock (its snapshot sees an
 * erasure that committed while we waited), so a session either exists before the erasure revokes
 * them all, or is refused (issue 23, finding 6: logins racing DELETE /users/me kept working tokens).
 *
 * A login passes the password hash it verified: the session starts only while that is still the
 * account's hash, read under a share lock on the account's row. The users projection's update of
 * the hash waits for that lock, so a login either commits its session before a new password is
 * visible (and the change's revocation after visibility ends it) or sees the new hash and is
 * refused. Before, a login with the old password between the change's revocation and the
 * projection's update kept a session for good.
 */
export async function insertSession(pool: Pool, s: { id: string; userId: string; refreshHash: Buffer; expiresAt: Date; verifiedHash?: string }): Promise<boolean> {
  return withTransaction(pool, async (tx) => {
    // The shared side of the fence (the erasure takes the exclusive side, fenceErasure).
    await tx.query('SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 7))', [s.userId]);
    if (s.verifiedHash !== undefined) {
      const { rows } = await tx.query<{ password_hash: string }>('SELECT password_hash FROM users.users WHERE id = $1 FOR SHARE', [s.userId]);
      if (rows[0]?.password_hash !== s.verifiedHash) return false;
    }
    const { rowCount } = await tx.query(
      `INSERT INTO users.sessions (id, user_id, refresh_hash, expires_at)
       SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM users.erasing WHERE user_id = $2)`,
      [s.id, s.userId, s.refreshHash, s.expiresAt],
    );
    return rowCount === 1;
  });
}

/**
 * Marks an account's erasure as begun, under the exclusive side of the fence: every session start
 * that got in first has committed when this returns, so revoking all sessions after it misses none.
 */
export async function fenceErasure(pool: Pool, userId: string): Promise<void> {
  await withTransaction(pool, async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 7))', [userId]);
    await tx.query('INSERT INTO users.erasing (user_id) VALUES ($1) ON CONFLICT DO NOTHING', [userId]);
  });
}

/** How many rotations back a replayed refresh token is looked for (about a month of 15-minute refreshes, 3 ms of hashing). */
export const MAX_CHAIN_STEPS = 3000;

/**
 * Rotates a session's refresh token if `presented` is its current secret, to `next(presented)`.
 * Compare-and-set in one statement, so of two concurrent refreshes with the same token exactly one
 * wins. Otherwise, a secret that leads by rotations (`next`, refresh-tokens.ts nextRefreshSecret)
 * to the current one was rotated away and is being replayed: 'reused', and the caller revokes the
 * session (revokeSessions tells the gateways). Before, only the secret the last rotation replaced
 * was recognised: a thief holding an older one, refused, went unnoticed, and so did the theft.
 */
export async function rotateRefresh(
  pool: Pool,
  sessionId: string,
  presented: string,
  next: (secret: string) => string,
  /** Awaited before the walk along the chain (up to MAX_CHAIN_STEPS hashes), which it may refuse (a throttle). */
  beforeWalk: () => Promise<void> = async () => {},
): Promise<'rotated' | 'reused' | 'invalid'> {
  const presentedHash = hashSecret(presented);
  const rotated = await pool.query(
    `UPDATE users.sessions
        SET refresh_hash = $3, previous_hash = refresh_hash, last_used_at = now(), rotations = rotations + 1
      WHERE id = $1 AND refresh_hash = $2 AND revoked_at IS NULL AND expires_at > now()`,
    [sessionId, presentedHash, hashSecret(next(presented))],
  );
  if (rotated.rowCount === 1) return 'rotated';
  const { rows } = await pool.query<{ refresh_hash: Buffer; previous_hash: Buffer | null; rotations: number }>(
    'SELECT refresh_hash, previous_hash, rotations FROM users.sessions WHERE id = $1 AND revoked_at IS NULL',
    [sessionId],
  );
  const session = rows[0];
  if (!session) return 'invalid';
  // Rotated before this version, with random secrets: only the last replaced one is known.
  if (sameHash(session.previous_hash, presentedHash)) return 'reused';
  if (session.rotations === 0) return 'invalid';
  await beforeWalk();
  let secret = presented;
  for (let step = 0; step < Math.min(session.rotations, MAX_CHAIN_STEPS); step++) {
    secret = next(secret);
    if (sameHash(session.refresh_hash, hashSecret(secret))) return 'reused';
  }
  return 'invalid';
}

export async function findSessionUser(pool: Pool, sessionId: string): Promise<string | null> {
  const { rows } = await pool.query<{ user_id: string }>('SELECT user_id FROM users.sessions WHERE id = $1', [sessionId]);
  return rows[0]?.user_id ?? null;
}

/**
 * Marks sessions revoked; returns the ids that were still active, and after them those this same
 * revocation (the same sessions and reason) marked within the last day: a try whose announcement
 * failed after its rows were marked (NATS unreachable) is announced by the next try, which found
 * nothing active any more and announced nothing (the sessions' access tokens and sockets went on
 * working until they expired). A day: no access token lives longer (ACCESS_TOKEN_TTL's cap).
 */
export async function revokeSessionRows(
  pool: Pool,
  userId: string,
  which: { sessionId: string } | { allExcept: string | null },
  reason: string,
): Promise<string[]> {
  // The sessions meant, as a condition on users.sessions ($1 user, $2 the session or the one kept).
  const meant = 'sessionId' in which ? 'user_id = $1 AND id = $2::uuid' : 'user_id = $1 AND ($2::uuid IS NULL OR id <> $2::uuid)';
  const param = 'sessionId' in which ? which.sessionId : which.allExcept;
  const { rows } = await pool.query<{ id: string }>(
    `WITH fresh AS (
       UPDATE users.sessions SET revoked_at = now(), revoked_reason = $3
        WHERE ${meant} AND revoked_at IS NULL RETURNING id)
     SELECT id FROM fresh
     UNION ALL
     SELECT id FROM users.sessions
      WHERE ${meant} AND revoked_reason = $3 AND revoked_at > now() - interval '1 day'`,
    [userId, param, reason],
  );
  return rows.map((r) => r.id);
}
