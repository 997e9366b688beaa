import { Type, type Static } from '@sinclair/typebox';
import { eventSchema } from '../envelope.js';

/**
 * Security context: the audit log, session revocations and password-reset tokens. Each lives in a
 * stream of its own because each has its own retention (docs/retention.md#the-policy).
 */
export const AuditAction = Type.Union(
  [
    'user.registered',
    'login.succeeded',
    'login.failed',
    'logout',
    'refresh.reused',
    'password.changed',
    'password.reset.requested',
    'password.reset.completed',
    'session.revoked',
    'account.deleted',
    'email.verification.requested',
    'email.verified',
    'registration.throttled',
  ].map((a) => Type.Literal(a)),
);
export type AuditAction = Static<typeof AuditAction>;

/** One audit-log entry: who, what, when, from where. Never a password, token or hash. */
export const SecurityEventRecorded = eventSchema(
  'SecurityEventRecorded',
  1,
  Type.Object(
    {
      auditId: Type.String(),
      /** The account concerned; null when a failed login named no existing account. */
      userId: Type.Union([Type.String(), Type.Null()]),
      action: AuditAction,
      ip: Type.String(),
      userAgent: Type.String(),
      details: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()])),
    },
    { additionalProperties: false },
  ),
);
export type SecurityEventRecorded = Static<typeof SecurityEventRecorded>;

/**
 * A session ended before its tokens expired (logout, password change or reset, refresh-token
 * reuse). Every gateway keeps these in memory for as long as an access token can live, so a revoked
 * token stops working without a database read per request.
 */
export const SessionRevoked = eventSchema(
  'SessionRevoked',
  1,
  Type.Object(
    {
      sessionId: Type.String(),
      userId: Type.String(),
      reason: Type.Union(['logout', 'password_changed', 'password_reset', 'refresh_token_reuse', 'account_deleted'].map((r) => Type.Literal(r))),
    },
    { additionalProperties: false },
  ),
);
export type SessionRevoked = Static<typeof SessionRevoked>;

/** A reset token was issued; only its SHA-256 travels and is stored. */
export const PasswordResetRequested = eventSchema(
  'PasswordResetRequested',
  1,
  Type.Object(
    { resetId: Type.String(), userId: Type.String(), tokenHash: Type.String(), expiresAt: Type.String() },
    { additionalProperties: false },
  ),
);
export type PasswordResetRequested = Static<typeof PasswordResetRequested>;

export const PasswordResetCompleted = eventSchema(
  'PasswordResetCompleted',
  1,
  Type.Object({ resetId: Type.String(), userId: Type.String() }, { additionalProperties: false }),
);
export type PasswordResetCompleted = Static<typeof PasswordResetCompleted>;

/**
 * The retention service's deletion events for the audit log and reset tokens: entries older than
 * `cutoff` are past AUDIT_LOG_RETENTION_DAYS / RESET_TOKEN_RETENTION_DAYS. Published on the stream's
 * own `retention` subject; the stream's `max_age` (or the retention pass's purge) removes the events.
 */
export const AuditEntriesExpired = eventSchema('AuditEntriesExpired', 1, Type.Object({ cutoff: Type.String() }, { additionalProperties: false }));
export type AuditEntriesExpired = Static<typeof AuditEntriesExpired>;
export const ResetTokensExpired = eventSchema('ResetTokensExpired', 1, Type.Object({ cutoff: Type.String() }, { additionalProperties: false }));
export type ResetTokensExpired = Static<typeof ResetTokensExpired>;

/**
 * Account erasure: the person's audit entries and reset tokens go. The users service purges the
 * person's subject first, then publishes these on it (ids only), so the stream keeps nothing else.
 */
export const AuditEntriesErased = eventSchema('AuditEntriesErased', 1, Type.Object({ userId: Type.String() }, { additionalProperties: false }));
export type AuditEntriesErased = Static<typeof AuditEntriesErased>;
export const ResetTokensErased = eventSchema('ResetTokensErased', 1, Type.Object({ userId: Type.String() }, { additionalProperties: false }));
export type ResetTokensErased = Static<typeof ResetTokensErased>;
export const ResetEvents = [PasswordResetRequested, PasswordResetCompleted, ResetTokensExpired, ResetTokensErased] as const;
export type ResetEvent = PasswordResetRequested | PasswordResetCompleted | ResetTokensExpired | ResetTokensErased;
export const AuditEvents = [SecurityEventRecorded, AuditEntriesExpired, AuditEntriesErased] as const;
export type AuditEvent = SecurityEventRecorded | AuditEntriesExpired | AuditEntriesErased;

/**
 * The erasure ledger (ids only, kept forever in its own stream): what was erased on request, so
 * that a restored backup can be scrubbed again (`npm run cleanup -- --reapply-ledger`).
 */
export const ErasureRecorded = eventSchema(
  'ErasureRecorded',
  1,
  Type.Union([
    Type.Object({ kind: Type.Literal('user'), userId: Type.String(), purgeMessages: Type.Boolean() }, { additionalProperties: false }),
    Type.Object({ kind: Type.Literal('message'), chatId: Type.String(), messageId: Type.String() }, { additionalProperties: false }),
  ]),
);
export type ErasureRecorded = Static<typeof ErasureRecorded>;
export const ErasureEvents = [ErasureRecorded] as const;
export type ErasureEvent = ErasureRecorded;
export const RevocationEvents = [SessionRevoked] as const;
export type RevocationEvent = SessionRevoked;
