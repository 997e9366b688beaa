import type { Queryable } from '@parley/pg';

export interface AuditRow {
  id: string;
  action: string;
  ip: string;
  user_agent: string;
  details: Record<string, unknown>;
  occurred_at: Date;
}

/** One page of a user's audit entries, newest first, strictly before the (time, id) cursor. */
export async function auditPage(db: Queryable, userId: string, limit: number, before: { at: string; id: string } | null): Promise<AuditRow[]> {
  const { rows } = await db.query<AuditRow>(
    `SELECT id, action, ip, user_agent, details, occurred_at FROM users.audit_log
      WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (occurred_at, id) < ($2::timestamptz, $3::uuid))
      ORDER BY occurred_at DESC, id DESC LIMIT $4`,
    [userId, before?.at ?? null, before?.id ?? null, limit],
  );
  return rows;
}
