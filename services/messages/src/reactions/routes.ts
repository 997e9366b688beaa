import { Type } from '@sinclair/typebox';
import { Uuid } from '@parley/contracts';
import { NotFound, type ApiRouter } from '@parley/http';
import type { Queryable } from '@parley/pg';
import type { AppendDeps } from '../chats/append.js';
import { basisWith, writeChat, type WriteDeps } from '../chats/write.js';
import { lookupMessage } from '../messages/lookup.js';

/** An emoji: a short token without whitespace (emoji sequences can be up to a dozen code units). */
const Emoji = Type.String({ minLength: 1, maxLength: 16, pattern: '^\\S+$' });

async function hasReaction(db: Queryable, messageId: string, userId: string, emoji: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM messages.reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3', [messageId, userId, emoji]);
  return rowCount === 1;
}

/** One reaction per user per emoji per message; adding it again changes nothing. */
export function reactionRoutes(router: ApiRouter, deps: AppendDeps & WriteDeps): void {
  router.route({
    method: 'POST',
    url: '/api/v1/messages/:id/reactions',
    schema: { params: Type.Object({ id: Uuid }), body: Type.Object({ emoji: Emoji }, { additionalProperties: false }) },
    handler: async ({ params, body, auth, request }) => {
      const message = await lookupMessage(deps, params.id);
      if (!message) throw new NotFound('No such message');
      // The reaction read after the basis: a change between the two is also among the events the
      // writer folds after the basis, which override it (ChatState.reactions).
      const basis = await basisWith(deps.pool, message.chat_id, { message });
      const reacted = await hasReaction(deps.pool, params.id, auth.userId, body.emoji);
      await writeChat(deps, message.chat_id, { type: 'React', actorId: auth.userId, messageId: params.id, emoji: body.emoji, reacted }, {
        msgId: `react:${params.id}:${auth.userId}:${body.emoji}:${request.requestId}`,
        actorId: auth.userId,
        correlationId: request.requestId,
        basis,
      });
      return { status: 201, body: { messageId: params.id, emoji: body.emoji } };
    },
  });

  router.route({
    method: 'DELETE',
    url: '/api/v1/messages/:id/reactions/:emoji',
    schema: { params: Type.Object({ id: Uuid, emoji: Emoji }) },
    handler: async ({ params, auth, request }) => {
      const emoji = params.emoji;
      const message = await lookupMessage(deps, params.id);
      if (!message) throw new NotFound('No such message');
      const basis = await basisWith(deps.pool, message.chat_id, { message });
      const reacted = await hasReaction(deps.pool, params.id, auth.userId, emoji);
      await writeChat(deps, message.chat_id, { type: 'Unreact', actorId: auth.userId, messageId: params.id, emoji, reacted }, {
        msgId: `unreact:${params.id}:${auth.userId}:${emoji}:${request.requestId}`,
        actorId: auth.userId,
        correlationId: request.requestId,
        basis,
      });
      return { status: 204 };
    },
  });
}
