import type { Projection } from '@parley/projector-pg';
import type { AttachmentEvent } from '@parley/contracts';
import type { AttachmentStore } from '@parley/storage';

export const ATTACHMENTS_PROJECTOR = 'attachments-projection';
export const ATTACHMENTS_PROJECTION_TABLES = ['messages.attachments'];

/** Projects uploaded files' metadata (the attachment subjects of the chats stream); deletions remove the file too. */
export function attachmentsProjection(deps: { store: AttachmentStore }): Projection<AttachmentEvent> {
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
            `DELETE FROM messages.attachments a WHERE a.id = $1
               AND NOT EXISTS (SELECT 1 FROM messages.message_attachments ma WHERE ma.attachment_id = a.id)`,
            [event.data.attachmentId],
          );
          return;
        default: {
          const unhandled: never = event;
          throw new Error(`attachments projection cannot apply ${(unhandled as { type: string }).type}`);
        }
      }
    },
    async afterCommit(events) {
      for (const e of events) if (e.type === 'AttachmentDeleted') await deps.store.delete(e.data.attachmentId);
    },
  };
}
