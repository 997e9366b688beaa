import { publishEvent, type Bus } from '@parley/bus';
import { waitForCheckpoint } from '@parley/projector-pg';
import { buildMeta, newId, subjects, type PasswordChanged } from '@parley/contracts';
import type { Pool } from '@parley/pg';
import type { Metrics } from '@parley/telemetry';
import { CHECKPOINT_TABLE, USERS_PROJECTOR } from '../users/projection.js';

export interface StorePasswordDeps {
  bus: Bus;
  pool: Pool;
  namespace: string;
  metrics: Metrics;
}

/**
 * Publishes PasswordChanged (the argon2id hash, never the password) on the user's subject.
 * Returns the stream sequence, for waitForPasswordVisible. `msgId` lets a caller whose retry must
 * not store twice pass a stable id; by default every call is a new change.
 */
export async function publishPasswordChanged(
  deps: StorePasswordDeps,
  change: { userId: string; passwordHash: string; reason: PasswordChanged['data']['reason']; correlationId: string; msgId?: string },
): Promise<number> {
  const eventId = newId();
  const event: PasswordChanged = {
    type: 'PasswordChanged',
    version: 1,
    data: { userId: change.userId, passwordHash: change.passwordHash, reason: change.reason },
    meta: buildMeta({ eventId, occurredAt: new Date(), actorId: change.userId, correlationId: change.correlationId }),
  };
  const ack = await publishEvent(deps.bus.js, subjects.user(deps.namespace, change.userId), event, { msgId: change.msgId ?? `password:${eventId}` }, deps.metrics);
  return ack.seq;
}

/** Read-your-writes: true once the users projection (which login reads) holds the new hash. */
export function waitForPasswordVisible(deps: { pool: Pool }, streamSeq: number): Promise<boolean> {
  return waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, USERS_PROJECTOR, streamSeq);
}
