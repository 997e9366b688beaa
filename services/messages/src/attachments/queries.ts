import type { MessageView } from '@parley/contracts';
import type { Queryable } from '@parley/pg';

export type AttachmentView = MessageView['attachments'][number];

/** Attachment metadata if `userId` uploaded it or is a member of a chat where it was sent. */
export async function accessibleAttachment(db: Queryable, attachmentId: string, userId: string): Promise<AttachmentView | null> {
  const { rows } = await db.query<{ id: string; name: string; size: number; mime: string }>(
    `SELECT a.id, a.name, a.size, a.mime FROM messages.attachments a
      WHERE a.id = $1 AND (a.uploader_id = $2 OR EXISTS (
        SELECT 1 FROM messages.message_attachments ma
          JOIN messages.chat_members cm ON cm.chat_id = ma.chat_id AND cm.user_id = $2
         WHERE ma.attachment_id = a.id))`,
    [attachmentId, userId],
  );
  return rows[0] ?? null;
}

/**
 * The attachments, in the given order, if every id is one the sender may attach (uploaded by them
 * or visible to them); null otherwise.
 */
export async function usableAttachments(db: Queryable, attachmentIds: string[], userId: string): Promise<AttachmentView[] | null> {
  if (attachmentIds.length === 0) return [];
  const { rows } = await db.query<AttachmentView>(
    `SELECT a.id, a.name, a.size, a.mime FROM messages.attachments a
      WHERE a.id = ANY($1::uuid[]) AND (a.uploader_id = $2 OR EXISTS (
        SELECT 1 FROM messages.message_attachments ma
          JOIN messages.chat_members cm ON cm.chat_id = ma.chat_id AND cm.user_id = $2
         WHERE ma.attachment_id = a.id))`,
    [attachmentIds, userId],
  );
  if (rows.length !== new Set(attachmentIds).size) return null;
  return attachmentIds.map((id) => rows.find((r) => r.id === id)!);
}

/** Whether a message carries attachments (an edit may then leave its body blank, as a send may). */
export async function carriesAttachments(db: Queryable, messageId: string): Promise<boolean> {
  const { rows } = await db.query<{ carries: boolean }>('SELECT EXISTS (SELECT 1 FROM messages.message_attachments WHERE message_id = $1) AS carries', [messageId]);
  return rows[0]?.carries ?? false;
}

/** The attachments of several messages, in the order they were attached. */
export async function attachmentsOf(db: Queryable, messageIds: string[]): Promise<Map<string, AttachmentView[]>> {
  const out = new Map<string, AttachmentView[]>();
  if (messageIds.length === 0) return out;
  const { rows } = await db.query<{ message_id: string; id: string; name: string; size: number; mime: string }>(
    `SELECT ma.message_id, a.id, a.name, a.size, a.mime FROM messages.message_attachments ma
       JOIN messages.attachments a ON a.id = ma.attachment_id
      WHERE ma.message_id = ANY($1::uuid[]) ORDER BY ma.message_id, ma.position`,
    [messageIds],
  );
  for (const r of rows) {
    const list = out.get(r.message_id) ?? [];
    list.push({ id: r.id, name: r.name, size: r.size, mime: r.mime });
    out.set(r.message_id, list);
  }
  return out;
}

/** Attachments of these messages that no other live message references (their files can go). */
export async function orphanedBy(db: Queryable, messageIds: string[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT a.id FROM messages.attachments a
      WHERE a.id IN (SELECT attachment_id FROM messages.message_attachments WHERE message_id = ANY($1::uuid[]))
        AND NOT EXISTS (SELECT 1 FROM messages.message_attachments o JOIN messages.messages m ON m.id = o.message_id
                         WHERE o.attachment_id = a.id AND m.deleted_at IS NULL AND NOT (o.message_id = ANY($1::uuid[])))`,
    [messageIds],
  );
  return rows.map((r) => r.id);
}
