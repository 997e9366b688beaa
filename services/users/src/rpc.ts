import { readStored } from '@parley/bus';
import { isId, newId, streamName, subjects, type ErasureRecorded, type RpcMethods } from '@parley/contracts';
import { eraseAccount, type EraseDeps } from './erasure/erase.js';
import type { Pool } from '@parley/pg';
import { retentionPreview } from './retention.js';
import { existingUserIds, findUserById, watcherIds } from './users/queries.js';

/** Internal request/reply methods the users service answers (contracts RpcMethods). */
export function usersRpc(pool: Pool, deps: EraseDeps) {
  return {
    ping: async (): Promise<RpcMethods['users.ping']['res']> => ({ ok: true }),
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
      // Only an account the erasure ledger names: the ledger (written by users alone) is the
      // proof, never the request, so retention's credentials cannot erase anyone else.
      const entry = await readStored<ErasureRecorded>(deps.bus.jsm, streamName(deps.namespace, 'erasures'), { last_by_subj: subjects.erasedUser(deps.namespace, user.id) }).catch(() => null);
      if (entry?.value.type !== 'ErasureRecorded' || entry.value.data.kind !== 'user') return { erased: false };
      await eraseAccount(deps, user, entry.value.data.purgeMessages, newId());
      return { erased: true };
    },
    retentionPreview: (req: RpcMethods['users.retentionPreview']['req'] | null) => retentionPreview(pool, req),
  };
}
