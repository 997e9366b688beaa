import { lastOnSubject, publishEvent, type Bus } from '@parley/bus';
import { waitForCheckpoint } from '@parley/projector-pg';
import type { Cache } from '@parley/cache';
import { streamName, subjects, type UserEvent } from '@parley/contracts';
import { Unavailable } from '@parley/http';
import type { Pool } from '@parley/pg';
import type { Metrics } from '@parley/telemetry';
import { cacheKeysFor } from './cache-keys.js';
import { CHECKPOINT_TABLE, USERS_PROJECTOR } from './projection.js';

export interface PublishDeps {
  bus: Bus;
  pool: Pool;
  cache: Cache;
  namespace: string;
  metrics?: Metrics;
}

/**
 * Publishes a users event on its owner's subject and returns once the users projection has applied
 * it, so the answer (and any replica's next read) sees the change.
 *
 * The cache entries it made stale are deleted here too, although the projection deletes them
 * after its commit: the checkpoint becomes visible at that commit, a moment before the
 * projection's delete, so without this a read right after the answer could still hit the old
 * entry. It also clears an entry a concurrent reader filled from Postgres just before the commit.
 */
export async function publishUserEvent(deps: PublishDeps, event: UserEvent, msgIdPrefix: string): Promise<void> {
  const ack = await publishEvent(deps.bus.js, subjects.user(deps.namespace, event.data.userId), event, {
    msgId: `${msgIdPrefix}:${event.meta.eventId}`,
  }, deps.metrics);
  if (!(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, USERS_PROJECTOR, ack.seq))) {
    throw new Unavailable('The change is stored but not yet visible; reload shortly');
  }
  await deps.cache.del(...cacheKeysFor(event));
}

/**
 * Waits until the users projection holds every event stored on the user's subject, before a route
 * decides from it whether a change is needed ("already blocked", "no field differs"). An answer of
 * 503 leaves its event stored but not yet projected: a second request decided on the row from
 * before it, found nothing to do, answered 200, and then the first event landed and undid what the
 * user asked last (e2e/security/stale-decisions.test.ts). Unavailable when it does not catch up.
 */
export async function projectedUpToDate(deps: Pick<PublishDeps, 'bus' | 'pool' | 'namespace'>, userId: string): Promise<void> {
  const last = await lastOnSubject(deps.bus.jsm, streamName(deps.namespace, 'users'), subjects.user(deps.namespace, userId));
  if (!last) return;
  if (!(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, USERS_PROJECTOR, last.stored.seq))) {
    throw new Unavailable('An earlier change is stored but not yet visible; try again shortly');
  }
}
