import { claimSubject, publishEvent, readStored, type Bus } from '@parley/bus';
import { waitForCheckpoint } from '@parley/projector-pg';
import {
  buildMeta,
  newId,
  streamName,
  subjects,
  type IdentityClaimed,
  type UserRegistered,
} from '@parley/contracts';
import { Conflict, InvalidRequest, Unavailable } from '@parley/http';
import type { Metrics } from '@parley/telemetry';
import type { Pool } from '@parley/pg';
import { CHECKPOINT_TABLE, USERS_PROJECTOR } from '../users/projection.js';
import { takenIdentities } from '../users/queries.js';
import { assertPasswordAllowed } from './password-policy.js';
import { hashPassword } from './passwords.js';

export interface RegisterInput {
  username: string;
  email: string;
  password: string;
  displayName?: string | undefined;
}

export interface RegisterDeps {
  bus: Bus;
  pool: Pool;
  namespace: string;
  metrics: Metrics;
  now?: () => Date;
}

/** A claim whose user never registered (the registering process died) may be taken over after this. */
const ORPHAN_CLAIM_AFTER_MS = 60_000;

/**
 * Registers a user. Uniqueness of username and e-mail is decided by JetStream (a claim subject per
 * name, first writer wins), so two replicas racing for one name cannot both succeed; the projection
 * check before it only spares the password hashing for the common "already taken" case.
 */
export async function registerUser(deps: RegisterDeps, input: RegisterInput, correlationId: string): Promise<{ userId: string }> {
  const { bus, namespace } = deps;
  const now = deps.now ?? (() => new Date());
  // As PATCH /users/me takes it (profile.ts): trimmed, and not blank. A name of spaces was taken here.
  const displayName = input.displayName?.trim();
  if (displayName !== undefined && displayName.length === 0) throw new InvalidRequest('displayName must not be blank');
  // Before anything else: a refused password should not cost a query, a hash or a name claim.
  await assertPasswordAllowed(input.password);
  // Hashed before the names are checked, so a taken name answers no faster than a registration:
  // the time of the answer must not tell which addresses have accounts (issue 23, finding 5).
  const passwordHash = await hashPassword(input.password);
  const taken = await takenIdentities(deps.pool, input.username, input.email);
  if (taken.username) throw new Conflict('username_taken', 'That username is taken');
  if (taken.email) throw new Conflict('email_taken', 'That e-mail address is already registered');

  const userId = newId();
  const stream = streamName(namespace, 'users');

  const usernameClaim = await claim(deps, stream, 'username', input.username, userId, correlationId, now);
  if (!usernameClaim) throw new Conflict('username_taken', 'That username is taken');
  const emailClaim = await claim(deps, stream, 'email', input.email, userId, correlationId, now);
  if (!emailClaim) {
    // Give the username back: our claim is the subject's only message, so deleting it frees it.
    await bus.jsm.streams.deleteMessage(stream, usernameClaim.streamSeq, false).catch(() => {});
    throw new Conflict('email_taken', 'That e-mail address is already registered');
  }

  const event: UserRegistered = {
    type: 'UserRegistered',
    version: 1,
    data: { userId, username: input.username, email: input.email, displayName: displayName ?? input.username, passwordHash },
    meta: buildMeta({ eventId: newId(), occurredAt: now(), actorId: userId, correlationId }),
  };
  const ack = await publishEvent(bus.js, subjects.user(namespace, userId), event, {
    msgId: `register:${userId}`,
    expectLastSubjectSequence: 0,
  }, deps.metrics);
  // Read-your-writes: the caller logs in or fetches /users/me next, served from the projection.
  if (!(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, USERS_PROJECTOR, ack.seq))) {
    throw new Unavailable('Registration is stored but not yet visible; try logging in shortly');
  }
  return { userId };
}

async function claim(
  deps: RegisterDeps,
  stream: string,
  kind: 'username' | 'email',
  value: string,
  userId: string,
  correlationId: string,
  now: () => Date,
): Promise<{ streamSeq: number } | null> {
  const subject = subjects.identityClaim(deps.namespace, kind, value);
  const event: IdentityClaimed = {
    type: 'IdentityClaimed',
    version: 1,
    data: { kind, userId },
    meta: buildMeta({ eventId: newId(), occurredAt: now(), actorId: userId, correlationId }),
  };
  const msgId = `claim:${kind}:${userId}`;
  const holder = await claimSubject(deps.bus.js, deps.bus.jsm, stream, subject, event, msgId, deps.metrics);
  if (!holder) return readSeq(deps, stream, subject);
  if (holder.value.data.userId === userId) return { streamSeq: holder.streamSeq };
  // Held by someone else. If their registration never completed, the name is free again.
  const registered = await readStored(deps.bus.jsm, stream, { last_by_subj: subjects.user(deps.namespace, holder.value.data.userId) });
  const age = now().getTime() - Date.parse(holder.value.meta.occurredAt);
  if (registered || age < ORPHAN_CLAIM_AFTER_MS) return null;
  try {
    const ack = await publishEvent(deps.bus.js, subject, event, { msgId, expectLastSubjectSequence: holder.streamSeq }, deps.metrics);
    return { streamSeq: ack.seq };
  } catch {
    return null;
  }
}

async function readSeq(deps: RegisterDeps, stream: string, subject: string): Promise<{ streamSeq: number }> {
  const stored = await readStored(deps.bus.jsm, stream, { last_by_subj: subject });
  if (!stored) throw new Unavailable('Claim vanished; try again');
  return { streamSeq: stored.streamSeq };
}
