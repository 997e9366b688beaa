import type { Projection } from '@parley/projector-pg';
import type { Cache } from '@parley/cache';
import { identityKey, type UserEvent } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import { cacheKeysFor, contactsCacheKey } from './cache-keys.js';

export const USERS_PROJECTOR = 'users-projection';
export const CHECKPOINT_TABLE = 'users.projection_checkpoints';
/** Tables this projection owns: emptied and refilled by `npm run rebuild -- users`. */
export const PROJECTION_TABLES = ['users.users', 'users.contacts', 'users.blocks', 'users.erased_users'];

/**
 * Projects the users stream (accounts, profiles, passwords, contacts). Every write is keyed by ids
 * inside the event and guarded by the checkpoint, so a redelivered event changes nothing.
 * After commit it deletes the cache keys the events touched, so no replica serves a stale profile
 * or contact list once the event is projected.
 */
export function usersProjection(deps: { cache: Cache; metrics: Metrics; log?: Logger }): Projection<UserEvent> {
  // Contact lists an erasure changed, gathered in apply and dropped from Redis after the commit.
  // Per projector (one batch at a time), never shared. A crash in between leaves them to the TTL.
  const staleContactLists = new Set<string>();
  return {
    name: USERS_PROJECTOR,
    async apply(event, tx, position) {
      const at = event.meta.occurredAt;
      switch (event.type) {
        case 'UserRegistered': {
          const d = event.data;
          // The keys are the claims' (identityKey), so a registration that won both claims cannot
          // collide here. Should one anyway (rows keyed before identityKey, on an installation not
          // rebuilt since), the event is skipped and logged: a unique violation must never stop the
          // projector, which would refuse every other account's change behind it.
          const { rowCount } = await tx.query(
            `INSERT INTO users.users (id, username, username_lower, email, email_lower, display_name, password_hash, created_at, stream_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT DO NOTHING`,
            [d.userId, d.username, identityKey(d.username), d.email, identityKey(d.email), d.displayName, d.passwordHash, at, position.streamSeq],
          );
          if (rowCount === 0) {
            const { rowCount: exists } = await tx.query('SELECT 1 FROM users.users WHERE id = $1', [d.userId]);
            if (exists === 0) deps.log?.error({ userId: d.userId }, 'UserRegistered collides with another account on its username or e-mail key: skipped; rebuild the users projection (npm run rebuild -- users)');
          }
          return;
        }
        case 'ProfileUpdated': {
          const d = event.data;
          // COALESCE keeps fields the event does not mention; avatarUrl may be set to null on purpose.
          await tx.query(
            `UPDATE users.users SET
               display_name = COALESCE($2, display_name),
               bio = COALESCE($3, bio),
               avatar_url = CASE WHEN $4::boolean THEN $5 ELSE avatar_url END,
               stream_seq = $6
             WHERE id = $1`,
            [d.userId, d.displayName ?? null, d.bio ?? null, d.avatarUrl !== undefined, d.avatarUrl ?? null, position.streamSeq],
          );
          return;
        }
        case 'PasswordChanged':
          await tx.query('UPDATE users.users SET password_hash = $2, stream_seq = $3, password_changed_at = $4 WHERE id = $1', [
            event.data.userId,
            event.data.passwordHash,
            position.streamSeq,
            event.meta.occurredAt,
          ]);
          return;
        case 'EmailVerified':
          await tx.query('UPDATE users.users SET email_verified = true, stream_seq = $2 WHERE id = $1', [event.data.userId, position.streamSeq]);
          return;
        case 'PrivacyChanged':
          await tx.query(
            `UPDATE users.users SET privacy_group_add = COALESCE($2, privacy_group_add), privacy_presence = COALESCE($3, privacy_presence), stream_seq = $4
              WHERE id = $1`,
            [event.data.userId, event.data.groupAdd ?? null, event.data.presence ?? null, position.streamSeq],
          );
          return;
        case 'UserBlocked':
          await tx.query(
            `INSERT INTO users.blocks (user_id, blocked_id, blocked_at, stream_seq) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, blocked_id) DO NOTHING`,
            [event.data.userId, event.data.blockedId, at, position.streamSeq],
          );
          return;
        case 'UserUnblocked':
          await tx.query('DELETE FROM users.blocks WHERE user_id = $1 AND blocked_id = $2', [event.data.userId, event.data.blockedId]);
          return;
        case 'ContactAdded':
          await tx.query(
            `INSERT INTO users.contacts (user_id, contact_id, added_at, stream_seq) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, contact_id) DO NOTHING`,
            [event.data.userId, event.data.contactId, at, position.streamSeq],
          );
          return;
        case 'ContactRemoved':
          await tx.query('DELETE FROM users.contacts WHERE user_id = $1 AND contact_id = $2', [event.data.userId, event.data.contactId]);
          return;
        case 'UserErased': {
          // Everyone who had the person as a contact has a changed contact list.
          const { rows } = await tx.query<{ user_id: string }>('DELETE FROM users.contacts WHERE contact_id = $1 RETURNING user_id', [event.data.userId]);
          for (const r of rows) staleContactLists.add(r.user_id);
          await tx.query('DELETE FROM users.contacts WHERE user_id = $1', [event.data.userId]);
          await tx.query('DELETE FROM users.blocks WHERE user_id = $1 OR blocked_id = $1', [event.data.userId]);
          await tx.query('DELETE FROM users.users WHERE id = $1', [event.data.userId]);
          await tx.query(
            'INSERT INTO users.erased_users (id, erased_at, stream_seq) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING',
            [event.data.userId, at, position.streamSeq],
          );
          return;
        }
        default: {
          const unhandled: never = event;
          throw new Error(`users projection cannot apply ${(unhandled as { type: string }).type}`);
        }
      }
    },
    async afterCommit(events) {
      const registered = events.filter((e) => e.type === 'UserRegistered').length;
      if (registered > 0) deps.metrics.usersTotal.inc(registered);
      const contactLists = [...staleContactLists].map(contactsCacheKey);
      staleContactLists.clear();
      await deps.cache.delMany([...new Set([...events.flatMap(cacheKeysFor), ...contactLists])]);
    },
  };
}
