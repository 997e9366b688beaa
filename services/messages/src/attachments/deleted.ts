import { deleteSubjectMessages, lastOnSubject, publishEvent, type Bus } from '@parley/bus';
import { buildMeta, newId, streamName, subjects, type AttachmentDeleted } from '@parley/contracts';

/**
 * Publishes an attachment's AttachmentDeleted, the one way an attachment goes (released by its last
 * message, swept unsent, deleted by its uploader, erased unsent). The upload record stays on the
 * subject until the attachments projection has actually deleted the row: a message may have
 * picked the file up after the caller looked, and then the projection keeps the row, so the
 * record must stay for a rebuild to make it again (it was deleted here at once, and a rebuild lost
 * the file from that message: e2e/erasure-forwarded.test.ts). The projection queues the file in
 * `messages.file_deletions` when it deletes the row, and the file-deletion reactor removes the
 * record then (deleteUploadRecords); a tombstone it did not apply it queues for removal from the
 * stream instead, or a replay (attachments before chats, no links yet) would delete the kept row.
 * The dedup id is per event, not per attachment: after such a skipped tombstone the file's last
 * message can let go of it within the dedup window, and a per-attachment id made that release a
 * duplicate of the removed tombstone, stored nowhere. A repeated deletion is a no-op for the
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
  const ack = await publishEvent(deps.bus.js, subjects.attachment(deps.namespace, attachmentId), event, { msgId: `attachment-deleted:${attachmentId}:${event.meta.eventId}` });
  return ack.seq;
}

/**
 * Deletes a deleted attachment's upload records from the chats stream: every event on its subject
 * below the last one, when that is an AttachmentDeleted (the projection deleted the row on it, so
 * the file's name, size, type and uploader do not outlive it in the stream: issue 23, finding 11).
 * Also a record an earlier retention pass carried to the head (uploaded before that pass's
 * cutoff, sent after it), which is newer than the cutoff that expires its message and would have
 * stayed about a year more (e2e/retention.test.ts). Deleted by sequence, not rolled up: a rollup
 * made the attachments projection skip other attachments' events on NATS 2.9.10
 * (docs/reliability.md). Idempotent: a deleted record stays deleted.
 */
export async function deleteUploadRecords(deps: { bus: Bus; namespace: string }, attachmentId: string): Promise<void> {
  const stream = streamName(deps.namespace, 'chats');
  const subject = subjects.attachment(deps.namespace, attachmentId);
  const last = (await lastOnSubject(deps.bus.jsm, stream, subject))?.stored;
  if (!last || last.json<{ type: string }>().type !== 'AttachmentDeleted') return;
  await deleteSubjectMessages(deps.bus.jsm, stream, subject, last.seq);
}
