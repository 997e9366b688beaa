import type { Pool } from '@parley/pg';

/** SQL for users.sessions. */
export interface SessionRow {
  id: string;
  user_id: string;
  refresh_hash: Buffer;
  previous_hash: Buffer | null;
  expires_at: Date;
  revoked_at: Date | null;
}

export async function insertSession(pool: Pool, s: { id: string; userId: string; refreshHash: Buffer; expiresAt: Date }): Promise<void> {
  await pool.query('INSERT INTO users.sessions (id, user_id, refresh_hash, expires_at) VALUES ($1, $2, $3, $4)', [
    s.id,
    s.userId,
    s.refreshHash,
    s.expiresAt,
  ]);
}

/**
 * Rotates a session's refresh token if `presented` is its current one. Compare-and-set in one
 * statement, so of two concurrent refreshes with the same token exactly one wins.
 */
export async function rotateRefresh(pool: Pool, sessionId: string, presented: Buffer, next: Buffer): Promise<'rotated' | 'reused' | 'invalid'> {
  const rotated = await pool.query(
    `UPDATE users.sessions
        SET refresh_hash = $3, previous_hash = refresh_hash, last_used_at = now()
      WHERE id = $1 AND refresh_hash = $2 AND revoked_at IS NULL AND expires_at > now()`,
    [sessionId, presented, next],
  );
  if (rotated.rowCount === 1) return 'rotated';
  // A token that was already rotated away is being replayed: assume theft. The caller revokes the
  // session (revokeSessions), which also tells the gateways.
  const reused = await pool.query(
    `SELECT 1 FROM users.sessions WHERE id = $1 AND previous_hash = $2 AND revoked_at IS NULL`,
    [sessionId, presented],
  );
  return reused.rowCount === 1 ? 'reused' : 'invalid';
}

export async function findSessionUser(pool: Pool, sessionId: string): Promise<string | null> {
  const { rows } = await pool.query<{ user_id: string }>('SELECT user_id FROM users.sessions WHERE id = $1', [sessionId]);
  return rows[0]?.user_id ?? null;
}

/** Marks sessions revoked; returns the ids that were still active. */
export async function revokeSessionRows(
  pool: Pool,
  userId: string,
  which: { sessionId: string } | { allExcept: string | null },
  reason: string,
): Promise<string[]> {
  const { rows } =
    'sessionId' in which
      ? await pool.query<{ id: string }>(
          `UPDATE users.sessions SET revoked_at = now(), revoked_reason = $3
            WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id`,
          [which.sessionId, userId, reason],
        )
      : await pool.query<{ id: string }>(
          `UPDATE users.sessions SET revoked_at = now(), revoked_reason = $3
            WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2::uuid) RETURNING id`,
          [userId, which.allExcept, reason],
        );
  return rows.map((r) => r.id);
}
