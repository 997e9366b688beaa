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

/** The caller's contacts as the export shows them: who, and since when. */
export async function contactsOf(db: Queryable, userId: string) {
  const { rows } = await db.query<{ id: string; username: string; display_name: string; added_at: Date }>(
    `SELECT u.id, u.username, u.display_name, c.added_at
       FROM users.contacts c JOIN users.users u ON u.id = c.contact_id
      WHERE c.user_id = $1 ORDER BY c.added_at, c.contact_id`,
    [userId],
  );
  return rows.map((r) => ({ id: r.id, username: r.username, displayName: r.display_name, addedAt: r.added_at.toISOString() }));
}

/** Everyone the caller blocked, oldest first (all of them: an export is complete). */
export async function blocksOf(db: Queryable, userId: string) {
  const { rows } = await db.query<{ blocked_id: string; blocked_at: Date }>('SELECT blocked_id, blocked_at FROM users.blocks WHERE user_id = $1 ORDER BY blocked_at, blocked_id', [userId]);
  return rows.map((r) => ({ userId: r.blocked_id, blockedAt: r.blocked_at.toISOString() }));
}

/**
 * Every audit entry about the caller, oldest first. Unbounded on purpose: an export is complete,
 * and AUDIT_LOG_RETENTION_DAYS (90) keeps the log small.
 */
export async function auditOf(db: Queryable, userId: string) {
  const { rows } = await db.query<{ id: string; action: string; ip: string; user_agent: string; details: Record<string, unknown>; occurred_at: Date }>(
    'SELECT id, action, ip, user_agent, details, occurred_at FROM users.audit_log WHERE user_id = $1 ORDER BY occurred_at, id',
    [userId],
  );
  return rows.map((r) => ({ id: r.id, action: r.action, ip: r.ip, userAgent: r.user_agent, details: r.details, at: r.occurred_at.toISOString() }));
}
