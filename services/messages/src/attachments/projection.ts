import type { PositionedEvent, Projection } from '@parley/projector-pg';
import type { PoolClient } from '@parley/pg';
import { ATTACHMENTS_PROJECTOR, type AttachmentDeleted, type AttachmentEvent, type AttachmentUploaded } from '@parley/contracts';

export { ATTACHMENTS_PROJECTOR };
export const ATTACHMENTS_PROJECTION_TABLES = ['messages.attachments'];
/**
 * Its queues (not emptied by a rebuild): files to delete, drained by the file-deletion reactor,
 * and tombstones it did not apply, to remove from the stream (shared with the chats projection).
 */
export const ATTACHMENTS_QUEUE_TABLES = ['messages.file_deletions', 'messages.stream_deletions'];

/**
 * Projects uploaded files' metadata (the attachment subjects of the chats stream). A deletion
 * removes the record and queues the file in messages.file_deletions, in the same transaction; the
 * file-deletion reactor deletes it (reactors/attachments.ts). Only SQL, idempotent on its own.
 */
export function attachmentsProjection(deps: { onQueued?: () => void } = {}): Projection<AttachmentEvent> {
  return {
    name: ATTACHMENTS_PROJECTOR,
    apply: (event, tx, position) => applyRun([{ event, position }], tx),
    /**
     * The bulk path: each run of one event type in one statement, in order (a retention pass
     * releases thousands of attachments at once: one statement per AttachmentDeleted held the
     * pass's last step to about 2,000 a second). Equal to one by one: uploads and deletions of
     * different attachments commute, a repeated upload or deletion of one does nothing, and a
     * deleted attachment's file is queued with its first deletion's time.
     */
    async applyMany(items, tx) {
      let run: typeof items = [];
      for (const item of items) {
        if (run.length > 0 && run[0]!.event.type !== item.event.type) {
          await applyRun(run, tx);
          run = [];
        }
        run.push(item);
      }
      if (run.length > 0) await applyRun(run, tx);
    },
    async afterCommit(events) {
      // Either queue may have a row: the reactors take an empty queue cheaply.
      if (events.some((e) => e.type === 'AttachmentDeleted')) deps.onQueued?.();
    },
  };
}

/** A run of events of one type (see applyMany). */
async function applyRun(run: PositionedEvent<AttachmentEvent>[], tx: PoolClient): Promise<void> {
  const type = run[0]!.event.type;
  switch (type) {
    case 'AttachmentUploaded': {
      const uploads = run.map(({ event, position }) => ({ d: (event as AttachmentUploaded).data, at: event.meta.occurredAt, streamSeq: position.streamSeq }));
      await tx.query(
        `INSERT INTO messages.attachments (id, uploader_id, name, size, mime, uploaded_at, stream_seq)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], $7::bigint[])
         ON CONFLICT (id) DO NOTHING`,
        [uploads.map((u) => u.d.attachmentId), uploads.map((u) => u.d.uploaderId), uploads.map((u) => u.d.name), uploads.map((u) => u.d.size), uploads.map((u) => u.d.mime), uploads.map((u) => u.at), uploads.map((u) => u.streamSeq)],
      );
      return;
    }
    case 'AttachmentDeleted':
      // Only if still unused: a message may have picked it up after the sweeper (or the uploader's
      // DELETE, or the release reactor) looked. Then the row stays, and so must its upload record
      // (publishAttachmentDeleted): this tombstone is queued for removal from the stream instead
      // (reactors/stream-content.ts), because a replay applies it before any message links the file
      // (attachments are rebuilt first) and would delete the row live kept. Deleted rows queue their
      // file, and the file-deletion reactor removes the upload record with it.
      await tx.query(
        `WITH events AS (SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::bigint[]) WITH ORDINALITY AS r(id, at, seq, ord)),
              run AS (SELECT DISTINCT ON (id) id, at FROM events ORDER BY id, ord),
              gone AS (
                DELETE FROM messages.attachments a USING run WHERE a.id = run.id
                   AND NOT EXISTS (SELECT 1 FROM messages.message_attachments ma WHERE ma.attachment_id = a.id)
                RETURNING a.id, run.at),
              files AS (INSERT INTO messages.file_deletions (attachment_id, queued_at) SELECT id, at FROM gone ON CONFLICT DO NOTHING)
         INSERT INTO messages.stream_deletions (stream_seq, queued_at)
         SELECT e.seq, e.at FROM events e
          WHERE EXISTS (SELECT 1 FROM messages.attachments a WHERE a.id = e.id) AND NOT EXISTS (SELECT 1 FROM gone WHERE gone.id = e.id)
         ON CONFLICT DO NOTHING`,
        [run.map(({ event }) => (event as AttachmentDeleted).data.attachmentId), run.map(({ event }) => event.meta.occurredAt), run.map(({ position }) => position.streamSeq)],
      );
      return;
    default: {
      const unhandled: never = type;
      throw new Error(`attachments projection cannot apply ${String(unhandled)}`);
    }
  }
}
