import { readStored, type RpcHandlers } from '@parley/bus';
import { newId, streamName, subjects, type ErasureRecorded } from '@parley/contracts';
import { eraseAccount, type EraseDeps } from './erasure/erase.js';
import type { Pool } from '@parley/pg';
import { retentionPreview } from './retention.js';
import { admission, presenceAudience, presenceVisibleMany } from './privacy/queries.js';
import { existingUserIds, findUserById } from './users/queries.js';

/**
 * Internal request/reply methods the users service answers (contracts RPC_SCHEMAS). Each request
 * has passed its schema before it gets here (serveRpc).
 */
export function usersRpc(pool: Pool, deps: EraseDeps): RpcHandlers<'users'> {
  return {
    ping: async () => ({ ok: true }),
    existing: async (req) => ({ userIds: req.userIds.length === 0 ? [] : await existingUserIds(pool, req.userIds) }),
    admission: (req) => admission(pool, req.actorId, req.userIds, req.purpose),
    watchers: (req) => presenceAudience(pool, req.userId),
    presenceVisibleMany: async (req) => ({ userIds: await presenceVisibleMany(pool, req.viewers) }),
    reerase: async (req) => {
      const user = await findUserById(pool, req.userId);
      if (!user) return { erased: false };
      // Only an account the erasure ledger names: the ledger (written by users alone) is the
      // proof, never the request, so retention's credentials cannot erase anyone else.
      const entry = await readStored<ErasureRecorded>(deps.bus.jsm, streamName(deps.namespace, 'erasures'), { last_by_subj: subjects.erasedUser(deps.namespace, user.id) }).catch(() => null);
      if (entry?.value.type !== 'ErasureRecorded' || entry.value.data.kind !== 'user') return { erased: false };
      await eraseAccount(deps, user, entry.value.data.purgeMessages, newId());
      return { erased: true };
    },
    retentionPreview: (req) => retentionPreview(pool, req),
  };
}
