import { Type } from '@sinclair/typebox';
import { Uuid, type ReactionAdded, type ReactionRemoved } from '@parley/contracts';
import { NotFound, type ApiRouter } from '@parley/http';
import type { Queryable } from '@parley/pg';
import { appendChatEvent, type AppendDeps } from '../chats/append.js';
import { visibleMessage } from '../messages/edit.js';

/** An emoji: a short token without whitespace (emoji sequences can be up to a dozen code units). */
const Emoji = Type.String({ minLength: 1, maxLength: 16, pattern: '^\\S+$' });

async function hasReaction(db: Queryable, messageId: string, userId: string, emoji: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM messages.reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3', [messageId, userId, emoji]);
  return rowCount === 1;
}

/** One reaction per user per emoji per message; adding it again changes nothing. */
export function reactionRoutes(router: ApiRouter, deps: AppendDeps): void {
  router.route({
    method: 'POST',
    url: '/api/v1/messages/:id/reactions',
    schema: { params: Type.Object({ id: Uuid }), body: Type.Object({ emoji: Emoji }, { additionalProperties: false }) },
    handler: async ({ params, body, auth, request }) => {
      const { message } = await visibleMessage(deps, auth.userId, params.id);
      if (!(await hasReaction(deps.pool, params.id, auth.userId, body.emoji))) {
        await appendChatEvent<ReactionAdded>(deps, message.chat_id, `react:${params.id}:${auth.userId}:${body.emoji}:${request.requestId}`, auth.userId, request.requestId, {
          type: 'ReactionAdded',
          data: { messageId: params.id, userId: auth.userId, emoji: body.emoji },
        }, { waitForProjection: true });
      }
      return { status: 201, body: { messageId: params.id, emoji: body.emoji } };
    },
  });

  router.route({
    method: 'DELETE',
    url: '/api/v1/messages/:id/reactions/:emoji',
    schema: { params: Type.Object({ id: Uuid, emoji: Emoji }) },
    handler: async ({ params, auth, request }) => {
      const emoji = params.emoji;
      const { message } = await visibleMessage(deps, auth.userId, params.id);
      if (!(await hasReaction(deps.pool, params.id, auth.userId, emoji))) throw new NotFound('No such reaction');
      await appendChatEvent<ReactionRemoved>(deps, message.chat_id, `unreact:${params.id}:${auth.userId}:${emoji}:${request.requestId}`, auth.userId, request.requestId, {
        type: 'ReactionRemoved',
        data: { messageId: params.id, userId: auth.userId, emoji },
      }, { waitForProjection: true });
      return { status: 204 };
    },
  });
}
