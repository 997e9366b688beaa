import { isId, newId, type RpcMethods } from '@parley/contracts';
import { eraseAccount, type EraseDeps } from './erasure/erase.js';
import type { Pool } from '@parley/pg';
import { retentionPreview } from './retention.js';
import { existingUserIds, findUserById, watcherIds } from './users/queries.js';

/** Internal request/reply methods the users service answers (contracts RpcMethods). */
export function usersRpc(pool: Pool, deps: EraseDeps) {
  return {
    existing: async (req: RpcMethods['users.existing']['req']): Promise<RpcMethods['users.existing']['res']> => {
      const ids = Array.isArray(req?.userIds) ? req.userIds.filter(isId).slice(0, 1000) : [];
      return { userIds: ids.length === 0 ? [] : await existingUserIds(pool, ids) };
    },
    watchers: async (req: RpcMethods['users.watchers']['req']): Promise<RpcMethods['users.watchers']['res']> => ({
      userIds: isId(req?.userId) ? await watcherIds(pool, req.userId) : [],
    }),
    reerase: async (req: RpcMethods['users.reerase']['req'] | null): Promise<RpcMethods['users.reerase']['res']> => {
      const user = isId(req?.userId) ? await findUserById(pool, req.userId) : null;
      if (!user) return { erased: false };
      await eraseAccount(deps, user, req?.purgeMessages === true, newId());
      return { erased: true };
    },
    retentionPreview: (req: RpcMethods['users.retentionPreview']['req'] | null) => retentionPreview(pool, req),
  };
}
