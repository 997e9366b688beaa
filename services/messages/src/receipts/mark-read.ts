import { publishEvent, type Bus } from '@parley/bus';
import { buildMeta, newId, subjects, type ReadPositionUpdated } from '@parley/contracts';
import { NotFound } from '@parley/http';
import type { Pool } from '@parley/pg';
import { requireMember } from '../chats/access.js';
import { lookupMessage } from '../messages/lookup.js';

/**
 * Marks a chat read up to a message (its seq). Read positions only move forward, so a receipt for
 * an older message is accepted and changes nothing. Published on the member's receipt subject in
 * the receipts stream, which keeps only the latest per member and chat.
 */
export async function markRead(deps: { bus: Bus; pool: Pool; namespace: string; barrier: () => Promise<unknown> }, userId: string, chatId: string, messageId: string, correlationId: string): Promise<number> {
  await requireMember(deps.pool, chatId, userId);
  const message = await lookupMessage(deps, messageId);
  if (!message || message.chat_id !== chatId) throw new NotFound('No such message');
  // The receipts stream keeps only a member's latest receipt, so an older position must never be
  // published after a newer one: a replay would then restore the older one.
  const { rows } = await deps.pool.query<{ seq: number }>('SELECT seq FROM messages.read_positions WHERE chat_id = $1 AND user_id = $2', [chatId, userId]);
  if ((rows[0]?.seq ?? 0) >= message.seq) return rows[0]!.seq;
  const event: ReadPositionUpdated = {
    type: 'ReadPositionUpdated',
    version: 1,
    data: { chatId, userId, seq: message.seq },
    meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: userId, correlationId }),
  };
  await publishEvent(deps.bus.js, subjects.receipt(deps.namespace, chatId, userId), event, { msgId: `read:${chatId}:${userId}:${message.seq}` });
  return message.seq;
}
