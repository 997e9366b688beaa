import { deleteSubjectMessages, isNotFound, publishEvent, type Bus } from '@parley/bus';
import { waitForCheckpoint } from '@parley/projector-pg';
import type { Cache } from '@parley/cache';
import type { LoginThrottle } from '../auth/throttle.js';
import { buildMeta, newId, streamName, subjects, type AuditEntriesErased, type ErasureRecorded, type ResetTokensErased, type UserErased } from '@parley/contracts';
import { Unavailable } from '@parley/http';
import type { Pool } from '@parley/pg';
import { revokeSessions } from '../auth/revoke.js';
import { fenceErasure } from '../auth/sessions.js';
import { CHECKPOINT_TABLE, USERS_PROJECTOR } from '../users/projection.js';
import { cacheKeysFor } from '../users/cache-keys.js';
import type { UserRow } from '../users/queries.js';
import type { Mailer } from '../mail/mailer.js';

export interface EraseDeps {
  bus: Bus;
  pool: Pool;
  cache: Cache;
  namespace: string;
  /** Its attempt counters go with the account: they are keyed by its names. */
  throttle: LoginThrottle;
  /** Reset mails still held for the address (the development folder) go with the account. */
  mailer?: Mailer;
}

/**
 * Erases an account (DELETE /users/me). Every step is idempotent and the order is chosen so that
 * an interrupted erasure is finished by repeating it (the ledger entry comes first, so a restored
 * backup is scrubbed even if the rest never ran):
 *
 * 1. Ledger: an ErasureRecorded entry (ids only) in the erasures stream, kept forever.
 * 2. Sessions: none may start any more (users.erasing, under a lock session starts share), then all
 *    are revoked (sockets close, tokens stop working) and their rows deleted.
 * 3. UserErased on the user's subject, then every earlier event of the account on it is deleted
 *    from the stream (profile, password hash, contacts), one by one: not a subject rollup, which
 *    makes NATS 2.9.10's consumers skip other users' events (docs/reliability.md); the projection deletes the rows and cache
 *    entries and keeps only the id as a "deleted account". The messages service reacts to it
 *    (leaves every chat, and purges the person's messages if asked).
 * 4. The other streams: username and e-mail claims (the names become free), audit entries and
 *    reset tokens of the account are purged, and AuditEntriesErased / ResetTokensErased tell
 *    those projections to delete their rows (its read positions, in the messages service's
 *    receipts stream, are purged by that service's erasure reactor).
 * 5. Presence: any key left in the presence bucket is purged, and the last seen time; mails to the
 *    address still held by the development mail folder are deleted.
 * 6. Once the projection has deleted the row, the last seen time is purged again: a gateway that
 *    saw the revoked sockets close writes it before asking users.watchers, which answers `nobody`
 *    from then on, so a time written after the first purge is removed here or by that gateway.
 */
export async function eraseAccount(deps: EraseDeps, user: UserRow, purgeMessages: boolean, correlationId: string): Promise<void> {
  const { bus, namespace: ns } = deps;
  const meta = () => buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: user.id, correlationId });
  const ledger: ErasureRecorded = { type: 'ErasureRecorded', version: 1, data: { kind: 'user', userId: user.id, purgeMessages }, meta: meta() };
  await publishEvent(bus.js, subjects.erasedUser(ns, user.id), ledger, { msgId: `erasure:user:${user.id}` });

  // No session can start from here on; those that started before are revoked next.
  await fenceErasure(deps.pool, user.id);
  await revokeSessions(deps, user.id, { allExcept: null }, 'account_deleted', correlationId);
  await deps.pool.query('DELETE FROM users.sessions WHERE user_id = $1', [user.id]);
  await deps.throttle.forgetUser(user);

  const erased: UserErased = { type: 'UserErased', version: 1, data: { userId: user.id, purgeMessages }, meta: meta() };
  const ack = await publishEvent(bus.js, subjects.user(ns, user.id), erased, { msgId: `erase:${user.id}:${correlationId}` });
  await deleteSubjectMessages(bus.jsm, streamName(ns, 'users'), subjects.user(ns, user.id), ack.seq);

  const purges: [string, string][] = [
    ['users', subjects.identityClaim(ns, 'username', user.username)],
    ['users', subjects.identityClaim(ns, 'email', user.email)],
    ['audit', subjects.audit(ns, user.id)],
    ['resets', subjects.reset(ns, user.id)],
  ];
  for (const [stream, filter] of purges) await deleteSubjectMessages(bus.jsm, streamName(ns, stream as 'users'), filter);
  // The audit and resets projections delete their rows on these (ids only). Published after the
  // purge, on the purged subjects, with a new dedup id at every attempt: a repeated erasure's
  // purge takes the earlier ones, so it must store them anew.
  const auditErased: AuditEntriesErased = { type: 'AuditEntriesErased', version: 1, data: { userId: user.id }, meta: meta() };
  await publishEvent(bus.js, subjects.audit(ns, user.id), auditErased, { msgId: `audit-erased:${user.id}:${auditErased.meta.eventId}` });
  const resetsErased: ResetTokensErased = { type: 'ResetTokensErased', version: 1, data: { userId: user.id }, meta: meta() };
  await publishEvent(bus.js, subjects.reset(ns, user.id), resetsErased, { msgId: `resets-erased:${user.id}:${resetsErased.meta.eventId}` });
  await deleteSubjectMessages(bus.jsm, `KV_${subjects.presenceBucket(ns)}`, `$KV.${subjects.presenceBucket(ns)}.${user.id}.>`).catch(() => 0);
  await purgeLastSeen(bus, ns, user.id);
  await deps.mailer?.forget(user.email);

  if (!(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, USERS_PROJECTOR, ack.seq))) {
    throw new Unavailable('The erasure is recorded and will complete shortly');
  }
  await purgeLastSeen(bus, ns, user.id);
  await deps.cache.del(...cacheKeysFor(erased));
}

/** The user's key in the last seen bucket, with its history (none left, not even a marker). */
export async function purgeLastSeen(bus: Bus, ns: string, userId: string): Promise<void> {
  // No bucket before any gateway created one: nothing to remove. Any other failure fails the
  // request, as a failed purge of the other streams does.
  await deleteSubjectMessages(bus.jsm, `KV_${subjects.lastSeenBucket(ns)}`, `$KV.${subjects.lastSeenBucket(ns)}.${userId}`).catch((error: unknown) => {
    if (!isNotFound(error)) throw error;
  });
}
