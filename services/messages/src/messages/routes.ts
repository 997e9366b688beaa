import { Type } from '@sinclair/typebox';
import type { Bus } from '@parley/bus';
import { SendMessageBody, Uuid } from '@parley/contracts';
import { cursorField, decodeCursor, encodeCursor, itemsWithinBudget, NotFound, pageLimit, type ApiRouter } from '@parley/http';
import { membershipAt } from '../chats/queries.js';
import { ChatIdParams, ListQuery } from '../chats/schemas.js';
import { deleteMessage, editMessage } from './edit.js';
import { historyPage, messageViews } from './queries.js';
import { sendMessage, type SendDeps } from './send.js';
import type { AppendDeps } from '../chats/append.js';
import type { WriteDeps } from '../chats/write.js';

const isSeqCursor = (v: unknown): v is { seq: number } =>
  typeof v === 'object' && v !== null && cursorField.int((v as { seq?: unknown }).seq, 1);

export function messageRoutes(router: ApiRouter, deps: SendDeps & AppendDeps & WriteDeps & { bus: Bus }): void {
  router.route({
    method: 'GET',
    url: '/api/v1/chats/:id/messages',
    schema: { params: ChatIdParams, query: ListQuery },
    handler: async ({ params, query, auth }) => {
      const limit = pageLimit(query.limit);
      const before = decodeCursor(query.before, isSeqCursor);
      // Read before the page: the projection applies in chat order, so the page holds at least every
      // message up to `seq`. A client that got `reset` with a newer seq reloads until it reaches it.
      const { member, seq } = await membershipAt(deps.pool, params.id, auth.userId);
      if (!member) throw new NotFound('No such chat');
      const rows = await historyPage(deps.pool, params.id, limit + 1, before?.seq ?? null);
      const views = await messageViews(deps.pool, rows.slice(0, limit), auth.userId);
      const items = views.slice(0, itemsWithinBudget(views));
      const last = items[items.length - 1];
      return {
        status: 200,
        body: { items, nextCursor: (rows.length > limit || items.length < views.length) && last ? encodeCursor({ seq: last.seq }) : null, seq },
      };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/chats/:id/messages',
    schema: { params: ChatIdParams, body: Type.Object(SendMessageBody.properties, { additionalProperties: false }) },
    handler: async ({ params, body, auth, request }) => {
      const { message, duplicate } = await sendMessage(deps, auth.userId, params.id, body, request.requestId);
      return { status: duplicate ? 200 : 201, body: message };
    },
  });

  router.route({
    method: 'PATCH',
    url: '/api/v1/messages/:id',
    schema: { params: Type.Object({ id: Uuid }), body: Type.Object({ body: Type.String({ maxLength: 65_536 }) }, { additionalProperties: false }) },
    handler: async ({ params, body, auth, request }) => {
      const row = await editMessage(deps, auth.userId, params.id, body.body, request.requestId);
      const [view] = await messageViews(deps.pool, [row], auth.userId);
      return { status: 200, body: view };
    },
  });

  router.route({
    method: 'DELETE',
    url: '/api/v1/messages/:id',
    schema: { params: Type.Object({ id: Uuid }) },
    handler: async ({ params, auth, request }) => {
      await deleteMessage(deps, auth.userId, params.id, request.requestId);
      return { status: 204 };
    },
  });
}
