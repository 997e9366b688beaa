import type { Projection } from '@parley/bus';
import type { Cache } from '@parley/cache';
import type { ChatEvent } from '@parley/contracts';
import type { Metrics } from '@parley/telemetry';
import { chatListKey } from './cache-keys.js';

export const CHATS_PROJECTOR = 'chats-projection';
export const CHECKPOINT_TABLE = 'messages.projection_checkpoints';
/** Emptied and refilled by `npm run rebuild -- messages`. */
export const PROJECTION_TABLES = [
  'messages.messages',
  'messages.direct_chats',
  'messages.chat_members',
  'messages.chats',
];

/**
 * Projects every chat event into the chats, members and messages tables. Inserts are keyed by the
 * ids inside the event (ON CONFLICT DO NOTHING) and the checkpoint skips redeliveries, so applying
 * an event twice changes nothing.
 */
export function chatsProjection(deps: { cache: Cache; metrics: Metrics }): Projection<ChatEvent> {
  return {
    name: CHATS_PROJECTOR,
    async apply(event, tx, position) {
      switch (event.type) {
        case 'ChatCreated': {
          const d = event.data;
          await tx.query(
            `INSERT INTO messages.chats (id, type, title, created_by, created_at, last_seq, last_activity_at, stream_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $5, $7) ON CONFLICT (id) DO NOTHING`,
            [event.chatId, d.type, d.title, d.createdBy, event.meta.occurredAt, event.seq, position.streamSeq],
          );
          await tx.query(
            `INSERT INTO messages.chat_members (chat_id, user_id, role, joined_seq)
             SELECT $1, m.user_id, m.role, $4 FROM unnest($2::uuid[], $3::text[]) AS m(user_id, role)
             ON CONFLICT DO NOTHING`,
            [event.chatId, d.members.map((m) => m.userId), d.members.map((m) => m.role), event.seq],
          );
          if (d.type === 'direct' && d.members.length === 2) {
            const [a, b] = d.members.map((m) => m.userId).sort();
            await tx.query(
              'INSERT INTO messages.direct_chats (user_a, user_b, chat_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
              [a, b, event.chatId],
            );
          }
          return;
        }
        case 'MessageSent': {
          const d = event.data;
          await tx.query(
            `INSERT INTO messages.messages (id, chat_id, seq, sender_id, client_msg_id, body, reply_to, created_at, stream_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
            [d.messageId, event.chatId, event.seq, d.senderId, d.clientMsgId, d.body, d.replyTo, event.meta.occurredAt, position.streamSeq],
          );
          await touchChat(tx, event);
          return;
        }
        default: {
          const unhandled: never = event;
          throw new Error(`chats projection cannot apply ${(unhandled as { type: string }).type}`);
        }
      }
    },
    async afterCommit(events) {
      deps.metrics.messagesTotal.inc(events.filter((e) => e.type === 'MessageSent').length);
      // Any change to a chat changes its members' chat lists.
      const chatIds = [...new Set(events.map((e) => e.chatId))];
      const members = chatIds.length === 0 ? [] : events.flatMap((e) => (e.type === 'ChatCreated' ? e.data.members.map((m) => m.userId) : []));
      await deps.cache.del(...chatIds.map((id) => `chat:${id}`), ...members.map(chatListKey));
    },
  };
}

async function touchChat(tx: { query: (sql: string, params: unknown[]) => Promise<unknown> }, event: ChatEvent): Promise<void> {
  await tx.query(
    'UPDATE messages.chats SET last_seq = GREATEST(last_seq, $2), last_activity_at = GREATEST(last_activity_at, $3) WHERE id = $1',
    [event.chatId, event.seq, event.meta.occurredAt],
  );
}
