import { publishEvent, type Bus } from '@parley/bus';
import { buildMeta, newId, subjects, type AttachmentDeleted } from '@parley/contracts';

/**
 * Publishes an attachment's AttachmentDeleted, the one way an attachment goes (released by its last
 * message, swept unsent, deleted by its uploader). Rolled up: the tombstone (ids and reason)
 * replaces the upload record on the subject, so the file's name, size, type and uploader do not
 * outlive it in the stream (issue 23, finding 11). The dedup id is per attachment: a retry stores
 * nothing new, and a later one is a no-op for the projection. Returns the stream sequence.
 */
export async function publishAttachmentDeleted(
  deps: { bus: Bus; namespace: string },
  attachmentId: string,
  reason: AttachmentDeleted['data']['reason'],
  context: { actorId: string | null; correlationId?: string; occurredAt?: Date } = { actorId: null },
): Promise<number> {
  const event: AttachmentDeleted = {
    type: 'AttachmentDeleted',
    version: 1,
    data: { attachmentId, reason },
    meta: buildMeta({ eventId: newId(), occurredAt: context.occurredAt ?? new Date(), actorId: context.actorId, correlationId: context.correlationId ?? newId() }),
  };
  const ack = await publishEvent(deps.bus.js, subjects.attachment(deps.namespace, attachmentId), event, { msgId: `attachment-deleted:${attachmentId}`, rollupSubject: true });
  return ack.seq;
}
