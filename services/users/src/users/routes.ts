import { Type } from '@sinclair/typebox';
import { identityKey, Uuid } from '@parley/contracts';
import { decodeCursor, encodeCursor, NotFound, pageLimit, PageQuery, type ApiRouter } from '@parley/http';
import { ownProfile, publicProfile, updateProfile, type ProfileDeps } from './profile.js';
import { searchUsers, toUserView } from './queries.js';
import type { SearchLimiter } from './search-limit.js';

const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false });
const PatchMe = Type.Object(
  {
    displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    bio: Type.Optional(Type.String({ maxLength: 500 })),
    avatarUrl: Type.Optional(Type.Union([Type.String({ maxLength: 2048 }), Type.Null()])),
  },
  { additionalProperties: false, minProperties: 1 },
);
const SearchQuery = Type.Object({ query: Type.String({ minLength: 1, maxLength: 64 }), ...PageQuery }, { additionalProperties: false });
const isCursor = (v: unknown): v is { after: string } => typeof v === 'object' && v !== null && typeof (v as { after?: unknown }).after === 'string';

export function userRoutes(router: ApiRouter, deps: ProfileDeps & { searchLimiter: SearchLimiter }): void {
  router.route({
    method: 'GET',
    url: '/api/v1/users/me',
    handler: async ({ auth }) => {
      const me = await ownProfile(deps, auth.userId);
      if (!me) throw new NotFound('No such user');
      return { status: 200, body: me };
    },
  });

  router.route({
    method: 'PATCH',
    url: '/api/v1/users/me',
    schema: { body: PatchMe },
    handler: async ({ auth, body, request }) => {
      const { own, changed } = await updateProfile(deps, auth.userId, body, request.requestId);
      return { status: 200, body: own, ...(changed ? { profileChanged: changed } : {}) };
    },
  });

  router.route({
    method: 'GET',
    url: '/api/v1/users',
    schema: { query: SearchQuery },
    handler: async ({ auth, query }) => {
      deps.searchLimiter.take(auth.userId);
      const limit = pageLimit(query.limit);
      const cursor = decodeCursor(query.before, isCursor);
      const rows = await searchUsers(deps.pool, query.query, limit + 1, cursor?.after ?? null);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        status: 200,
        // Public profiles only: the directory never shows e-mail addresses.
        body: { items: page.map((r) => toUserView(r)), nextCursor: rows.length > limit && last ? encodeCursor({ after: identityKey(last.username) }) : null },
      };
    },
  });

  router.route({
    method: 'GET',
    url: '/api/v1/users/:id',
    schema: { params: IdParams },
    handler: async ({ params }) => {
      const view = await publicProfile(deps, params.id);
      if (!view) throw new NotFound('No such user');
      return { status: 200, body: view };
    },
  });
}
