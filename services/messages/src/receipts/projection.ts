import type { Projection } from '@parley/projector-pg';
import type { Cache } from '@parley/cache';
import { RETENTION_PROJECTORS, type ReceiptEvent } from '@parley/contracts';
import { deleteInBatches } from '@parley/pg';
import { chatListKey } from '../chats/cache-keys.js';

export const RECEIPTS_PROJECTOR = RETENTION_PROJECTORS.receipts;
export const RECEIPTS_PROJECTION_TABLES = ['messages.read_positions'];

/** Read positions only move forward: a late or replayed older receipt changes nothing. */
export function receiptsProjection(deps: { cache: Cache }): Projection<ReceiptEvent> {
  /**
   * Whose read positions this batch's expiries deleted, for afterCommit. A batch that failed and is
   * applied again only adds the same readers (a few more cache deletions at worst).
   */
  const expiredReaders = new Set<string>();
  return {
    name: RECEIPTS_PROJECTOR,
    async apply(event, tx, position) {
      switch (event.type) {
        case 'ReadPositionUpdated':
          await tx.query(
            `INSERT INTO messages.read_positions (chat_id, user_id, seq, updated_at, stream_seq) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (chat_id, user_id) DO UPDATE SET seq = GREATEST(messages.read_positions.seq, EXCLUDED.seq),
               updated_at = EXCLUDED.updated_at, stream_seq = EXCLUDED.stream_seq`,
            [event.data.chatId, event.data.userId, event.data.seq, event.meta.occurredAt, position.streamSeq],
          );
          return;
        case 'ReadPositionsExpired': {
          await deleteInBatches(
            tx,
            'DELETE FROM messages.read_positions WHERE (chat_id, user_id) IN (SELECT chat_id, user_id FROM messages.read_positions WHERE updated_at < $1 LIMIT $2) RETURNING user_id::text',
            [event.data.cutoff],
            { onRows: (rows) => rows.forEach((r) => expiredReaders.add(r.user_id as string)) },
          );
          return;
        }
        case 'ReadPositionsErased':
          await tx.query('DELETE FROM messages.read_positions WHERE user_id = $1', [event.data.userId]);
          return;
        default: {
          const unhandled: never = event;
          throw new Error(`receipts projection cannot apply ${(unhandled as { type: string }).type}`);
        }
      }
    },
    async afterCommit(events) {
      // The reader's unread counts changed: an update's reader, and everyone whose position an
      // expiry deleted (their lists counted from it, and kept doing so until REDIS_CHATS_TTL).
      const readers = new Set([...events.flatMap((e) => (e.type === 'ReadPositionUpdated' ? [e.data.userId] : [])), ...expiredReaders]);
      expiredReaders.clear();
      await deps.cache.delMany([...readers].map(chatListKey));
    },
  };
}
