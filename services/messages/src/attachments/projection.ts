import type { Projection } from '@parley/bus';
import type { AttachmentEvent } from '@parley/contracts';

export const ATTACHMENTS_PROJECTOR = 'attachments-projection';
export const ATTACHMENTS_PROJECTION_TABLES = ['messages.attachments'];

/** Projects uploaded files' metadata (the attachment subjects of the chats stream). */
export function attachmentsProjection(): Projection<AttachmentEvent> {
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
        default: {
          const unhandled: never = event.type;
          throw new Error(`attachments projection cannot apply ${String(unhandled)}`);
        }
      }
    },
  };
}
