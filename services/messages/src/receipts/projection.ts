import type { Projection } from '@parley/bus';
import type { Cache } from '@parley/cache';
import type { ReceiptEvent } from '@parley/contracts';
import { chatListKey } from '../chats/cache-keys.js';

export const RECEIPTS_PROJECTOR = 'receipts-projection';
export const RECEIPTS_PROJECTION_TABLES = ['messages.read_positions'];

/** Read positions only move forward: a late or replayed older receipt changes nothing. */
export function receiptsProjection(deps: { cache: Cache }): Projection<ReceiptEvent> {
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
        default: {
          const unhandled: never = event.type;
          throw new Error(`receipts projection cannot apply ${String(unhandled)}`);
        }
      }
    },
    async afterCommit(events) {
      // The reader's unread counts changed.
      await deps.cache.del(...new Set(events.map((e) => chatListKey(e.data.userId))));
    },
  };
}
