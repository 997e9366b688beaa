import type { Projection } from '@parley/bus';
import type { Cache } from '@parley/cache';
import type { UserEvent } from '@parley/contracts';
import type { Metrics } from '@parley/telemetry';
import { userCacheKey } from './cache-keys.js';

export const USERS_PROJECTOR = 'users-projection';
export const CHECKPOINT_TABLE = 'users.projection_checkpoints';
/** Tables this projection owns: emptied and refilled by `npm run rebuild -- users`. */
export const PROJECTION_TABLES = ['users.users', 'users.projection_checkpoints'];

export function usersProjection(deps: { cache: Cache; metrics: Metrics }): Projection<UserEvent> {
  return {
    name: USERS_PROJECTOR,
    async apply(event, tx, position) {
      switch (event.type) {
        case 'UserRegistered': {
          const d = event.data;
          await tx.query(
            `INSERT INTO users.users (id, username, username_lower, email, email_lower, display_name, password_hash, created_at, stream_seq)
             VALUES ($1, $2, lower($2), $3, lower($3), $4, $5, $6, $7)
             ON CONFLICT (id) DO NOTHING`,
            [d.userId, d.username, d.email, d.displayName, d.passwordHash, event.meta.occurredAt, position.streamSeq],
          );
          return;
        }
        default: {
          const unhandled: never = event.type;
          throw new Error(`users projection cannot apply ${String(unhandled)}`);
        }
      }
    },
    async afterCommit(events) {
      const registered = events.filter((e) => e.type === 'UserRegistered').length;
      if (registered > 0) deps.metrics.usersTotal.inc(registered);
      await deps.cache.del(...events.map((e) => userCacheKey(e.data.userId)));
    },
  };
}
