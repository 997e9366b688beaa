import { eachConcurrently, type Bus } from '@parley/bus';
import type { AttachmentDeleted } from '@parley/contracts';
import { deleteUploadRecords, publishAttachmentDeleted } from '../attachments/deleted.js';
import type { Logger } from '@parley/log';
import type { Pool } from '@parley/pg';
import type { AttachmentStore } from '@parley/storage';
import { QueueReactor } from './queue.js';

/** AttachmentDeleted events awaiting their ack at once, per drain. */
const PUBLISHES_IN_FLIGHT = 32;
/** Files being deleted at once (an unlink, or a request to an object store). */
const FILE_DELETIONS_IN_FLIGHT = 16;

/**
 * Deletes attachments their last message let go of. The chats projection queues them in
 * `messages.released_attachments` when it drops a deleted, expired or erased message's links; this
 * turns each one still unused into an AttachmentDeleted event on the attachment's own subject
 * (publishAttachmentDeleted), so the attachments projection (the owner of `messages.attachments`)
 * removes the row, and then the upload record goes, and a rebuild agrees. A retry stores another
 * deletion, a no-op for the projection.
 */
export function attachmentReleaseReactor(deps: { pool: Pool; bus: Bus; namespace: string; log: Logger }): QueueReactor {
  return new QueueReactor(deps, {
    name: 'attachment-release',
    table: 'messages.released_attachments',
    key: 'attachment_id',
    columns: ['reason'],
    batch: 100,
    async act(rows, tx) {
      // A message sent meanwhile may have picked it up again (attachments are reusable by id).
      const { rows: unused } = await tx.query<{ id: string }>(
        `SELECT a.id FROM unnest($1::uuid[]) AS a(id)
          WHERE NOT EXISTS (SELECT 1 FROM messages.message_attachments ma WHERE ma.attachment_id = a.id)`,
        [rows.map((r) => r.attachment_id)],
      );
      const free = new Set(unused.map((u) => u.id));
      // Each on its own subject, so their order does not matter: published side by side (one at a
      // time, a retention pass that released 10,000 files spent 20 s here waiting for acks).
      const released = rows.filter((row) => free.has(String(row.attachment_id)));
      await eachConcurrently(released, PUBLISHES_IN_FLIGHT, (row) =>
        publishAttachmentDeleted(deps, String(row.attachment_id), row.reason as AttachmentDeleted['data']['reason']).then(() => undefined),
      );
    },
  });
}

/**
 * Deletes the files of deleted attachments, and their upload records from the chats stream: the
 * attachments projection queues them in `messages.file_deletions` in the transaction that removes
 * the row, so a record leaves the stream only once no row is kept for it (deleteUploadRecords).
 * Deleting a file or record that is already gone is a success.
 */
export function fileDeletionReactor(deps: { pool: Pool; log: Logger; store: AttachmentStore; bus: Bus; namespace: string }): QueueReactor {
  return new QueueReactor(deps, {
    name: 'file-deletion',
    table: 'messages.file_deletions',
    key: 'attachment_id',
    batch: 100,
    async act(rows) {
      await eachConcurrently(rows, FILE_DELETIONS_IN_FLIGHT, async (row) => {
        await deleteUploadRecords(deps, String(row.attachment_id));
        await deps.store.delete(String(row.attachment_id));
      });
    },
  });
}
