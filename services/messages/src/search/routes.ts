import { Type } from '@sinclair/typebox';
import { isId, Uuid } from '@parley/contracts';
import { cursorField, decodeCursor, encodeCursor, itemsWithinBudget, NotFound, pageLimit, PageQuery, type ApiRouter } from '@parley/http';
import type { Pool } from '@parley/pg';
import { isMember } from '../chats/queries.js';
import { messageViews } from '../messages/queries.js';
import { MARK_END, MARK_START, searchMessages } from './queries.js';

const SearchQuery = Type.Object({ q: Type.String({ minLength: 1, maxLength: 200 }), chatId: Type.Optional(Uuid), ...PageQuery }, { additionalProperties: false });

const isCursor = (v: unknown): v is { rank: number; id: string } =>
  typeof v === 'object' && v !== null && cursorField.real((v as { rank?: unknown }).rank) && isId((v as { id?: unknown }).id);

const escapeHtml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The snippet as safe HTML: the body escaped, matches wrapped in <mark>. */
export function snippetHtml(raw: string): string {
  return escapeHtml(raw).replaceAll(MARK_START, '<mark>').replaceAll(MARK_END, '</mark>');
}

/** GET /api/v1/search?q=&chatId=: messages the caller may read, best match first. */
export function searchRoutes(router: ApiRouter, deps: { pool: Pool }): void {
  router.route({
    method: 'GET',
    url: '/api/v1/search',
    schema: { query: SearchQuery },
    handler: async ({ query, auth }) => {
      const limit = pageLimit(query.limit);
      const chatId = query.chatId ?? null;
      if (chatId && !(await isMember(deps.pool, chatId, auth.userId))) throw new NotFound('No such chat');
      const rows = await searchMessages(deps.pool, auth.userId, query.q, chatId, limit + 1, decodeCursor(query.before, isCursor));
      const page = rows.slice(0, limit);
      const views = await messageViews(deps.pool, page, auth.userId);
      const found = views.map((view, i) => ({ ...view, rank: page[i]!.rank, snippet: snippetHtml(page[i]!.snippet) }));
      const items = found.slice(0, itemsWithinBudget(found));
      const last = page[items.length - 1];
      return {
        status: 200,
        body: { items, nextCursor: (rows.length > limit || items.length < found.length) && last ? encodeCursor({ rank: last.rank, id: last.id }) : null },
      };
    },
  });
}
