import type { Projection } from '@parley/projector-pg';
import { RETENTION_PROJECTORS, type ResetEvent } from '@parley/contracts';
import { deleteInBatches } from '@parley/pg';

export const RESETS_PROJECTOR = RETENTION_PROJECTORS.resets;
/** Emptied and refilled by `npm run rebuild -- users`. */
export const RESETS_PROJECTION_TABLES = ['users.password_resets'];

/**
 * Projects the resets stream into users.password_resets. Confirming a reset marks the row used
 * directly (the single-use decision must be one atomic UPDATE, see queries.ts); the
 * PasswordResetCompleted event records the same fact in the stream, so a rebuild reproduces it.
 * Both writes are idempotent: inserts are keyed by resetId, and used_at is only ever set once.
 */
export function resetsProjection(): Projection<ResetEvent> {
  return {
    name: RESETS_PROJECTOR,
    async apply(event, tx, position) {
      switch (event.type) {
        case 'PasswordResetRequested': {
          const d = event.data;
          await tx.query(
            `INSERT INTO users.password_resets (id, user_id, token_hash, requested_at, expires_at, stream_seq)
             VALUES ($1, $2, decode($3, 'hex'), $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
            [d.resetId, d.userId, d.tokenHash, event.meta.occurredAt, d.expiresAt, position.streamSeq],
          );
          return;
        }
        case 'PasswordResetCompleted':
          await tx.query(
            'UPDATE users.password_resets SET used_at = COALESCE(used_at, $2), stream_seq = $3 WHERE id = $1',
            [event.data.resetId, event.meta.occurredAt, position.streamSeq],
          );
          return;
        case 'ResetTokensExpired':
          await deleteInBatches(tx, 'DELETE FROM users.password_resets WHERE id IN (SELECT id FROM users.password_resets WHERE requested_at < $1 LIMIT $2)', [event.data.cutoff]);
          return;
        case 'ResetTokensErased':
          await tx.query('DELETE FROM users.password_resets WHERE user_id = $1', [event.data.userId]);
          return;
        default: {
          const unhandled: never = event;
          throw new Error(`resets projection cannot apply ${(unhandled as { type: string }).type}`);
        }
      }
    },
  };
}
