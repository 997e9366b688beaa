import { Type } from '@sinclair/typebox';
import type { Cache } from '@parley/cache';
import { Uuid, type UserView } from '@parley/contracts';
import { NotFound, type ApiRouter } from '@parley/http';
import type { Pool } from '@parley/pg';
import { userCacheKey } from './cache-keys.js';
import { findUserById, toUserView } from './queries.js';

const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false });

export function userRoutes(router: ApiRouter, deps: { pool: Pool; cache: Cache; userTtlSeconds: number }): void {
  /** Public profile, through the Redis cache (invalidated by the projection on every user event). */
  const publicProfile = async (id: string): Promise<UserView | null> => {
    const cached = await deps.cache.getJson<UserView>(userCacheKey(id));
    if (cached) return cached;
    const row = await findUserById(deps.pool, id);
    if (!row) return null;
    const view = toUserView(row);
    await deps.cache.setJson(userCacheKey(id), view, deps.userTtlSeconds);
    return view;
  };

  router.route({
    method: 'GET',
    url: '/api/v1/users/me',
    handler: async ({ auth }) => {
      const row = await findUserById(deps.pool, auth.userId);
      if (!row) throw new NotFound('No such user');
      return { status: 200, body: toUserView(row, true) };
    },
  });

  router.route({
    method: 'GET',
    url: '/api/v1/users/:id',
    schema: { params: IdParams },
    handler: async ({ params }) => {
      const view = await publicProfile(params.id);
      if (!view) throw new NotFound('No such user');
      return { status: 200, body: view };
    },
  });
}
