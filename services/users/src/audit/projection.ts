import type { Projection } from '@parley/projector-pg';
import { RETENTION_PROJECTORS, type AuditEvent } from '@parley/contracts';
import { deleteInBatches } from '@parley/pg';

export const AUDIT_PROJECTOR = RETENTION_PROJECTORS.audit;
export const AUDIT_PROJECTION_TABLES = ['users.audit_log'];

/** Projects the audit stream into users.audit_log; the retention service's cutoff event prunes it. */
export function auditProjection(): Projection<AuditEvent> {
  return {
    name: AUDIT_PROJECTOR,
    async apply(event, tx, position) {
      switch (event.type) {
        case 'SecurityEventRecorded': {
          const d = event.data;
          await tx.query(
            `INSERT INTO users.audit_log (id, user_id, action, ip, user_agent, details, occurred_at, stream_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
            [d.auditId, d.userId, d.action, d.ip, d.userAgent, JSON.stringify(d.details), event.meta.occurredAt, position.streamSeq],
          );
          return;
        }
        case 'AuditEntriesExpired':
          await deleteInBatches(tx, 'DELETE FROM users.audit_log WHERE id IN (SELECT id FROM users.audit_log WHERE occurred_at < $1 LIMIT $2)', [event.data.cutoff]);
          return;
        case 'AuditEntriesErased':
          await tx.query('DELETE FROM users.audit_log WHERE user_id = $1', [event.data.userId]);
          return;
        default: {
          const unhandled: never = event;
          throw new Error(`audit projection cannot apply ${(unhandled as { type: string }).type}`);
        }
      }
    },
  };
}
