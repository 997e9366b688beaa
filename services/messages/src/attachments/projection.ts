import type { Projection } from '@parley/projector-pg';
import { ATTACHMENTS_PROJECTOR, type AttachmentEvent } from '@parley/contracts';

export { ATTACHMENTS_PROJECTOR };
export const ATTACHMENTS_PROJECTION_TABLES = ['messages.attachments'];
/** Its queue of files to delete (drained by the file-deletion reactor; not emptied by a rebuild). */
export const ATTACHMENTS_QUEUE_TABLES = ['messages.file_deletions'];

/**
 * Projects uploaded files' metadata (the attachment subjects of the chats stream). A deletion
 * removes the record and queues the file in messages.file_deletions, in the same transaction; the
 * file-deletion reactor deletes it (reactors/attachments.ts). Only SQL, idempotent on its own.
 */
export function attachmentsProjection(deps: { onQueued?: () => void } = {}): Projection<AttachmentEvent> {
  return {
    name: ATTACHMENTS_PROJECTOR,
    async apply(event, tx, position) {
      switch (event.type) {
        case 'AttachmentUploaded': {
          const d = event.data;
          await tx.query(
            `INSERT INTO messages.attachments (id, uploader_id, name, size, mime, uploaded_at, stream_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
            [d.attachmentId, d.uploaderId, d.name, d.size, d.mime, event.meta.occurredAt, position.streamSeq],
          );
          return;
        }
        case 'AttachmentDeleted':
          // Only if still unused: a message may have picked it up after the sweeper looked.
          await tx.query(
            `WITH gone AS (
               DELETE FROM messages.attachments a WHERE a.id = $1
                  AND NOT EXISTS (SELECT 1 FROM messages.message_attachments ma WHERE ma.attachment_id = a.id)
               RETURNING a.id)
             INSERT INTO messages.file_deletions (attachment_id, queued_at) SELECT id, $2 FROM gone ON CONFLICT DO NOTHING`,
            [event.data.attachmentId, event.meta.occurredAt],
          );
          return;
        default: {
          const unhandled: never = event;
          throw new Error(`attachments projection cannot apply ${(unhandled as { type: string }).type}`);
        }
      }
    },
    async afterCommit(events) {
      if (events.some((e) => e.type === 'AttachmentDeleted')) deps.onQueued?.();
    },
  };
}
