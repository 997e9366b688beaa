import { Type } from '@sinclair/typebox';
import { isId } from '@parley/contracts';
import { cursorField, decodeCursor, encodeCursor, pageLimit, PageQuery, type ApiRouter } from '@parley/http';
import type { Pool } from '@parley/pg';
import { auditPage } from './queries.js';

const isCursor = (v: unknown): v is { at: string; id: string } =>
  typeof v === 'object' && v !== null && cursorField.instant((v as { at?: unknown }).at) && isId((v as { id?: unknown }).id);

/** GET /api/v1/users/me/audit: the caller's own security log, newest first. */
export function auditRoutes(router: ApiRouter, deps: { pool: Pool }): void {
  router.route({
    method: 'GET',
    url: '/api/v1/users/me/audit',
    schema: { query: Type.Object(PageQuery, { additionalProperties: false }) },
    handler: async ({ auth, query }) => {
      const limit = pageLimit(query.limit);
      const rows = await auditPage(deps.pool, auth.userId, limit + 1, decodeCursor(query.before, isCursor));
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        status: 200,
        body: {
          items: page.map((r) => ({ id: r.id, action: r.action, ip: r.ip, userAgent: r.user_agent, details: r.details, at: r.occurred_at.toISOString() })),
          nextCursor: rows.length > limit && last ? encodeCursor({ at: last.occurred_at.toISOString(), id: last.id }) : null,
        },
      };
    },
  });
}
