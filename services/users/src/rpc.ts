import { isId, type RpcMethods } from '@parley/contracts';
import type { Pool } from '@parley/pg';
import { retentionPreview } from './retention.js';
import { existingUserIds, watcherIds } from './users/queries.js';

/** Internal request/reply methods the users service answers (contracts RpcMethods). */
export function usersRpc(pool: Pool) {
  return {
    existing: async (req: RpcMethods['users.existing']['req']): Promise<RpcMethods['users.existing']['res']> => {
      const ids = Array.isArray(req?.userIds) ? req.userIds.filter(isId).slice(0, 1000) : [];
      return { userIds: ids.length === 0 ? [] : await existingUserIds(pool, ids) };
    },
    watchers: async (req: RpcMethods['users.watchers']['req']): Promise<RpcMethods['users.watchers']['res']> => ({
      userIds: isId(req?.userId) ? await watcherIds(pool, req.userId) : [],
    }),
    retentionPreview: (req: RpcMethods['users.retentionPreview']['req'] | null) => retentionPreview(pool, req),
  };
}
