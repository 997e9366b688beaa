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
  const event: ReadPositionUpdated = {
    type: 'ReadPositionUpdated',
    version: 1,
    data: { chatId, userId, seq: message.seq },
    meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: userId, correlationId }),
  };
  await publishEvent(deps.bus.js, subjects.receipt(deps.namespace, chatId, userId), event, { msgId: `read:${chatId}:${userId}:${message.seq}` });
  return message.seq;
}
