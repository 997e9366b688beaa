import { publishEvent, readStored, WrongLastSequenceError, type Bus } from '@parley/bus';
import { buildMeta, newId, streamName, subjects, type ReadPositionUpdated } from '@parley/contracts';
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
  // published after a newer one: a replay would then restore the older one, and every member's
  // socket would be told the position went back. Decided on the stream's own latest receipt and
  // appended only over it (expected last subject sequence): two marks at once (two devices, two
  // frames in a row) could both pass a check of the projection, which trails the stream, and the
  // older one land last.
  const subject = subjects.receipt(deps.namespace, chatId, userId);
  const stream = streamName(deps.namespace, 'receipts');
  for (let attempt = 0; attempt < 10; attempt++) {
    const latest = await readStored<ReadPositionUpdated>(deps.bus.jsm, stream, { last_by_subj: subject });
    const current = latest?.value.data.seq ?? 0;
    if (current >= message.seq) return current;
    const event: ReadPositionUpdated = {
      type: 'ReadPositionUpdated',
      version: 1,
      data: { chatId, userId, seq: message.seq },
      meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: userId, correlationId }),
    };
    try {
      await publishEvent(deps.bus.js, subject, event, { msgId: `read:${chatId}:${userId}:${message.seq}`, expectLastSubjectSequence: latest?.streamSeq ?? 0 });
      return message.seq;
    } catch (error) {
      // Another mark landed first: decide again on it.
      if (!(error instanceof WrongLastSequenceError)) throw error;
    }
  }
  throw new Error(`could not mark ${chatId} read: too many concurrent marks`);
}
