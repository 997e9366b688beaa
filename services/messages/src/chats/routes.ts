import { Type } from '@sinclair/typebox';
import { isId, Uuid } from '@parley/contracts';
import { cursorField, decodeCursor, encodeCursor, NotFound, pageLimit, type ApiRouter } from '@parley/http';
import type { Pool } from '@parley/pg';
import type { Cache } from '@parley/cache';
import { markRead } from '../receipts/mark-read.js';
import { chatListKey } from './cache-keys.js';
import { createChat, type CreateChatDeps } from './create.js';
import { addMember, removeMember, renameChat, type ManageDeps } from './manage.js';
import { findChatForMember, listChats, readPositionsOf } from './queries.js';
import { requireMember } from './access.js';
import { ChatIdParams, CreateChatBody, ListQuery } from './schemas.js';

const isChatCursor = (v: unknown): v is { at: string; id: string } =>
  typeof v === 'object' && v !== null && cursorField.instant((v as { at?: unknown }).at) && isId((v as { id?: unknown }).id);

const MemberParams = Type.Object({ id: Uuid, userId: Uuid });

export function chatRoutes(router: ApiRouter, deps: CreateChatDeps & ManageDeps & { pool: Pool; cache: Cache; chatsTtlSeconds: number; barrier: () => Promise<unknown> }): void {
  router.route({
    method: 'PATCH',
    url: '/api/v1/chats/:id',
    schema: { params: ChatIdParams, body: Type.Object({ title: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false }) },
    handler: async ({ params, body, auth, request }) => {
      await renameChat(deps, auth.userId, params.id, body.title, request.requestId);
      return { status: 200, body: await findChatForMember(deps.pool, params.id, auth.userId) };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/chats/:id/members',
    schema: { params: ChatIdParams, body: Type.Object({ userId: Uuid }, { additionalProperties: false }) },
    handler: async ({ params, body, auth, request }) => {
      await addMember(deps, auth.userId, params.id, body.userId, request.requestId);
      return { status: 201, body: await findChatForMember(deps.pool, params.id, auth.userId) };
    },
  });

  router.route({
    method: 'DELETE',
    url: '/api/v1/chats/:id/members/:userId',
    schema: { params: MemberParams },
    handler: async ({ params, auth, request }) => {
      await removeMember(deps, auth.userId, params.id, params.userId, request.requestId);
      return { status: 204 };
    },
  });

  router.route({
    method: 'GET',
    url: '/api/v1/chats/:id/reads',
    schema: { params: ChatIdParams },
    handler: async ({ params, auth }) => {
      // Read-your-writes for the caller's own position is not promised: it is the projection.
      await requireMember(deps.pool, params.id, auth.userId);
      return { status: 200, body: { items: await readPositionsOf(deps.pool, params.id) } };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/chats/:id/read',
    schema: { params: ChatIdParams, body: Type.Object({ messageId: Uuid }, { additionalProperties: false }) },
    handler: async ({ params, body, auth, request }) => {
      await markRead(deps, auth.userId, params.id, body.messageId, request.requestId);
      return { status: 204 };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/chats',
    schema: { body: CreateChatBody },
    handler: async ({ body, auth, request }) => {
      const { chatId, created } = await createChat(deps, auth.userId, body, request.requestId);
      const chat = await findChatForMember(deps.pool, chatId, auth.userId);
      if (!chat) throw new Error(`chat ${chatId} missing after creation`);
      return { status: created ? 201 : 200, body: chat };
    },
  });

  router.route({
    method: 'GET',
    url: '/api/v1/chats',
    schema: { query: ListQuery },
    handler: async ({ query, auth }) => {
      const limit = pageLimit(query.limit);
      const before = decodeCursor(query.before, isChatCursor);
      // The first page is what every client loads on start: cached per user, dropped by the
      // projection whenever one of the user's chats changes (and by their read receipts).
      const cached = before === null && query.limit === undefined ? await deps.cache.lookup<unknown>(chatListKey(auth.userId)) : null;
      if (cached?.value) return { status: 200, body: cached.value };
      const page = await listChats(deps.pool, auth.userId, limit, before);
      const body = { items: page.chats, nextCursor: page.more && page.last ? encodeCursor(page.last) : null };
      await cached?.fill(body, deps.chatsTtlSeconds);
      return { status: 200, body };
    },
  });

  router.route({
    method: 'GET',
    url: '/api/v1/chats/:id',
    schema: { params: ChatIdParams },
    handler: async ({ params, auth }) => {
      const chat = await findChatForMember(deps.pool, params.id, auth.userId);
      if (!chat) throw new NotFound('No such chat');
      return { status: 200, body: chat };
    },
  });
}
