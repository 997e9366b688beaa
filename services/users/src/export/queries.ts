import type { Queryable } from '@parley/pg';

/** Session metadata for the export: never the refresh-token hashes. */
export async function sessionsOf(db: Queryable, userId: string) {
  const { rows } = await db.query<{ id: string; created_at: Date; last_used_at: Date; expires_at: Date; revoked_at: Date | null; revoked_reason: string | null }>(
    'SELECT id, created_at, last_used_at, expires_at, revoked_at, revoked_reason FROM users.sessions WHERE user_id = $1 ORDER BY created_at',
    [userId],
  );
  return rows.map((r) => ({
    id: r.id,
    createdAt: r.created_at.toISOString(),
    lastUsedAt: r.last_used_at.toISOString(),
    expiresAt: r.expires_at.toISOString(),
    revokedAt: r.revoked_at?.toISOString() ?? null,
    revokedReason: r.revoked_reason,
  }));
}
