import type { RpcMethods } from '@parley/contracts';
import type { Pool } from '@parley/pg';

type Preview = RpcMethods['users.retentionPreview'];

/** What a retention pass would delete from the users service's tables (its dry run and report). */
export async function retentionPreview(pool: Pool, req: Preview['req']): Promise<Preview['res']> {
  const { rows } = await pool.query<Preview['res']>(
    `SELECT (SELECT count(*) FROM users.audit_log WHERE occurred_at < $1)::int AS "auditEntries",
            (SELECT count(*) FROM users.password_resets WHERE requested_at < $2)::int AS "resetTokens"`,
    [new Date(req.auditCutoff), new Date(req.resetCutoff)],
  );
  return rows[0] ?? { auditEntries: 0, resetTokens: 0 };
}
