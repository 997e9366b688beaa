import { Type } from '@sinclair/typebox';
import type { Bus } from '@parley/bus';
import { Uuid } from '@parley/contracts';
import { publishAttachmentDeleted } from './deleted.js';
import { Conflict, NotFound, Unavailable, type ApiRouter } from '@parley/http';
import type { Pool } from '@parley/pg';

/**
 * DELETE /api/v1/attachments/:id (issue 23, finding 7): an upload its uploader no longer wants,
 * before any message carries it. A file in a message goes with the message (DELETE
 * /messages/:id), so that history never shows a message whose file vanished.
 */
export function attachmentRoutes(
  router: ApiRouter,
  deps: { pool: Pool; bus: Bus; namespace: string; barrier: () => Promise<boolean>; attachmentsBarrier: (streamSeq: number) => Promise<boolean> },
): void {
  router.route({
    method: 'DELETE',
    url: '/api/v1/attachments/:id',
    schema: { params: Type.Object({ id: Uuid }) },
    handler: async ({ params, auth, request }) => {
      // Whether a message carries it is the chats projection's to say: let it catch up with the
      // sends stored so far (the caller's own send a moment ago included).
      if (!(await deps.barrier())) throw new Unavailable('Messages are still being stored; try again');
      const { rows } = await deps.pool.query<{ uploader_id: string; sent: boolean }>(
        `SELECT a.uploader_id, EXISTS (SELECT 1 FROM messages.message_attachments ma WHERE ma.attachment_id = a.id) AS sent
           FROM messages.attachments a WHERE a.id = $1`,
        [params.id],
      );
      const row = rows[0];
      // Somebody else's upload answers like one that does not exist.
      if (!row || row.uploader_id !== auth.userId) throw new NotFound('No such attachment');
      if (row.sent) throw new Conflict('conflict', 'The file is part of a message: delete the message instead');
      const seq = await publishAttachmentDeleted(deps, params.id, 'deleted', { actorId: auth.userId, correlationId: request.requestId });
      // The record and file go with the projection (it queues the file); the answer waits for it.
      if (!(await deps.attachmentsBarrier(seq))) throw new Unavailable('The deletion is stored and will complete shortly');
      // A send of it stored after the check above: the projection kept the row (and the file), and
      // answering 204 said a file was gone that the message still shows.
      const kept = await deps.pool.query('SELECT 1 FROM messages.attachments WHERE id = $1', [params.id]);
      if (kept.rowCount) throw new Conflict('conflict', 'The file is part of a message: delete the message instead');
      return { status: 204 };
    },
  });
}
