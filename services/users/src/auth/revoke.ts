import { publishEvent, type Bus } from '@parley/bus';
import type { Cache } from '@parley/cache';
import { buildMeta, newId, subjects, type SessionRevoked } from '@parley/contracts';
import type { Pool } from '@parley/pg';
import { sessionCacheKey } from '../users/cache-keys.js';
import { revokeSessionRows } from './sessions.js';

export type RevocationReason = SessionRevoked['data']['reason'];

export interface RevokeDeps {
  bus: Bus;
  pool: Pool;
  cache: Cache;
  namespace: string;
}

/**
 * Ends sessions at once: marks them revoked in Postgres (refresh stops working) and publishes
 * SessionRevoked, which every gateway applies to its in-memory revocation list (the session's access
 * tokens stop working) and to its open sockets (closed within a second).
 * Returns the ids of the sessions it revoked, and of those an earlier try of the same revocation
 * marked but may not have announced (revokeSessionRows): announced again, which is idempotent.
 */
export async function revokeSessions(
  deps: RevokeDeps,
  userId: string,
  which: { sessionId: string } | { allExcept: string | null },
  reason: RevocationReason,
  correlationId: string,
): Promise<string[]> {
  const revoked = await revokeSessionRows(deps.pool, userId, which, reason);
  await Promise.all(
    revoked.map((sessionId) => {
      const event: SessionRevoked = {
        type: 'SessionRevoked',
        version: 1,
        data: { sessionId, userId, reason },
        meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: userId, correlationId }),
      };
      return publishEvent(deps.bus.js, subjects.revocation(deps.namespace, sessionId), event, { msgId: `revoke:${sessionId}` });
    }),
  );
  await deps.cache.del(...revoked.map(sessionCacheKey));
  return revoked;
}

/**
 * Adds to `revoked` the sessions of a second revocation it does not hold yet (a second call also
 * returns the first's sessions, which must be counted once).
 */
export function addRevoked(revoked: string[], again: string[]): void {
  for (const id of again) if (!revoked.includes(id)) revoked.push(id);
}
