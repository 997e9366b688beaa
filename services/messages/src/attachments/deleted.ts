import { deleteSubjectMessages, publishEvent, type Bus } from '@parley/bus';
import { buildMeta, newId, streamName, subjects, type AttachmentDeleted } from '@parley/contracts';

/**
 * Publishes an attachment's AttachmentDeleted, the one way an attachment goes (released by its last
 * message, swept unsent, deleted by its uploader). The tombstone (ids and reason) replaces the
 * upload record on the subject: once it is stored, the record is deleted, so the file's name, size,
 * type and uploader do not outlive it in the stream (issue 23, finding 11). Deleted by sequence,
 * not rolled up: a rollup made the attachments projection skip other attachments' events on NATS
 * 2.9.10 (docs/reliability.md). The dedup id is per attachment: a retry (after a crash between the
 * two steps too) stores nothing new and deletes what is left, and a later one is a no-op for the
 * projection. Returns the stream sequence.
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
  const subject = subjects.attachment(deps.namespace, attachmentId);
  const ack = await publishEvent(deps.bus.js, subject, event, { msgId: `attachment-deleted:${attachmentId}` });
  // Also for an expired message's file: its upload record is usually below the cutoff and goes with
  // the pass's purge, but one an earlier pass carried to the head (uploaded before that pass's
  // cutoff, sent after it) is newer than the cutoff that expires its message, and stayed about a
  // year more (e2e/retention.test.ts). The lookup costs a release about 0.1 ms.
  await deleteSubjectMessages(deps.bus.jsm, streamName(deps.namespace, 'chats'), subject, ack.seq);
  return ack.seq;
}
