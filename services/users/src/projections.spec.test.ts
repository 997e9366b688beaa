import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId, parseAuditEvent, parseResetEvent, parseUserEvent, type AuditEvent, type ResetEvent, type UserEvent } from '@parley/contracts';
import { createCache } from '@parley/cache';
import { createLogger } from '@parley/log';
import { migrate, type Pool, type PoolClient } from '@parley/pg';
import { createMetrics } from '@parley/telemetry';
import { checkProjection, fixtureStream, fixtureTime, projectionDatabase, rolledBack } from '@parley/testing';
import { auditProjection, AUDIT_PROJECTION_TABLES } from './audit/projection.js';
import { resetsProjection, RESETS_PROJECTION_TABLES } from './reset/projection.js';
import { PROJECTION_TABLES, usersProjection } from './users/projection.js';

/**
 * The projection specification (issue 17) for every projection of the users service: each event
 * applied twice, every suffix redelivered, against real Postgres, must leave the projection's
 * tables as applying the events once does; and each erasure deletes only its own projection's rows.
 */
const MIGRATIONS = fileURLToPath(new URL('../migrations', import.meta.url));

let pool: Pool;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ pool, cleanup } = await projectionDatabase((p) => migrate(p, 'users', MIGRATIONS)));
});
afterAll(() => cleanup?.());

const stored = fixtureStream();
const [ann, bob, cat] = [newId(), newId(), newId()];

describe('users projection', () => {
  const user = (type: UserEvent['type'], userId: string, data: object) => stored(parseUserEvent, `t.user.${userId}`, { type, data: { userId, ...data } });
  const registered = (userId: string, name: string) => user('UserRegistered', userId, { username: name, email: `${name}@example.test`, displayName: name, passwordHash: `hash-${name}` });
  const events = [
    registered(ann, 'ann'),
    registered(bob, 'bob'),
    registered(cat, 'cat'),
    user('ProfileUpdated', ann, { displayName: 'Ann', bio: 'hi', avatarUrl: 'https://example.test/a.png' }),
    user('ProfileUpdated', ann, { bio: 'hello' }),
    user('ProfileUpdated', ann, { avatarUrl: null }),
    user('PasswordChanged', bob, { passwordHash: 'hash-2', reason: 'change' }),
    user('PasswordChanged', bob, { passwordHash: 'hash-3', reason: 'reset' }),
    user('ContactAdded', ann, { contactId: bob }),
    user('ContactAdded', ann, { contactId: cat }),
    user('ContactAdded', cat, { contactId: bob }),
    user('ContactRemoved', ann, { contactId: cat }),
    user('ContactAdded', ann, { contactId: cat }),
    user('EmailVerified', ann, {}),
    user('PrivacyChanged', ann, { groupAdd: 'contacts' }),
    user('PrivacyChanged', ann, { presence: 'nobody' }),
    user('UserBlocked', ann, { blockedId: cat }),
    user('UserBlocked', cat, { blockedId: bob }),
    user('UserUnblocked', ann, { blockedId: cat }),
    user('UserBlocked', ann, { blockedId: cat }),
    user('UserErased', bob, { purgeMessages: true }),
  ];

  it('covers every user event type, and is idempotent on its own', async () => {
    expect(new Set(events.map((e) => e.event.type)).size).toBe(10);
    const projection = usersProjection({ cache: createCache({ url: undefined, prefix: 'spec', log: createLogger({ service: 'spec', level: 'silent' }) }), metrics: createMetrics('spec') });
    expect(await checkProjection(pool, { projection, tables: PROJECTION_TABLES, events })).toEqual([]);
  });
});

describe('audit projection', () => {
  const audit = (type: AuditEvent['type'], subject: string, data: object) => stored(parseAuditEvent, subject, { type, data });
  const entry = (userId: string | null, action: string) =>
    audit('SecurityEventRecorded', `t.audit.${userId ?? 'anonymous'}`, { auditId: newId(), userId, action, ip: '127.0.0.1', userAgent: 'spec', details: {} });
  const first = entry(ann, 'user.registered');
  const second = entry(bob, 'user.registered');
  const events = [
    first,
    second,
    entry(null, 'login.failed'),
    entry(ann, 'login.succeeded'),
    entry(bob, 'login.succeeded'),
    audit('AuditEntriesErased', `t.audit.${bob}`, { userId: bob }),
    entry(cat, 'user.registered'),
    // Everything before the second entry is past retention: the first.
    audit('AuditEntriesExpired', 't.audit.retention', { cutoff: second.event.meta.occurredAt }),
  ];

  it('covers every audit event type, is idempotent on its own, and an erasure takes only that person', async () => {
    expect(new Set(events.map((e) => e.event.type)).size).toBe(3);
    expect(await checkProjection(pool, { projection: auditProjection(), tables: AUDIT_PROJECTION_TABLES, events })).toEqual([]);
    const remaining = await applied(auditProjection(), events, 'SELECT user_id FROM users.audit_log ORDER BY occurred_at');
    expect(remaining).toEqual([{ user_id: null }, { user_id: ann }, { user_id: cat }]);
  });
});

describe('resets projection', () => {
  const reset = (type: ResetEvent['type'], subject: string, data: object) => stored(parseResetEvent, subject, { type, data });
  const [r1, r2, r3] = [newId(), newId(), newId()];
  const requested = (resetId: string, userId: string) =>
    reset('PasswordResetRequested', `t.reset.${userId}`, { resetId, userId, tokenHash: randomBytes(32).toString('hex'), expiresAt: fixtureTime(3600) });
  const first = requested(r1, ann);
  const second = requested(r2, bob);
  const completed = reset('PasswordResetCompleted', `t.reset.${ann}`, { resetId: r1, userId: ann });
  const third = requested(r3, cat);
  const events = [
    first,
    second,
    completed,
    third,
    reset('ResetTokensErased', `t.reset.${bob}`, { userId: bob }),
    // Requested before the third: past retention.
    reset('ResetTokensExpired', 't.reset.retention', { cutoff: third.event.meta.occurredAt }),
  ];

  it('covers every reset event type, is idempotent on its own, and an erasure takes only that person', async () => {
    expect(new Set(events.map((e) => e.event.type)).size).toBe(4);
    expect(await checkProjection(pool, { projection: resetsProjection(), tables: RESETS_PROJECTION_TABLES, events })).toEqual([]);
    const remaining = await applied(resetsProjection(), events, 'SELECT user_id, used_at IS NOT NULL AS used FROM users.password_resets ORDER BY requested_at');
    expect(remaining).toEqual([{ user_id: cat, used: false }]);
  });
});

/** Applies the events once in a rolled-back transaction and returns what `query` reads then. */
async function applied<E>(
  projection: { apply(event: E, tx: PoolClient, position: { streamSeq: number; subject: string }): Promise<unknown> },
  events: { event: E; position: { streamSeq: number; subject: string } }[],
  query: string,
): Promise<unknown[]> {
  return rolledBack(pool, async (client) => {
    for (const { event, position } of events) await projection.apply(event, client, position);
    return (await client.query(query)).rows;
  });
}
