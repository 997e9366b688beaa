import { publishEvent } from '@parley/bus';
import { buildMeta, newId, subjects, type PasswordResetCompleted } from '@parley/contracts';
import { InvalidRequest, Unavailable } from '@parley/http';
import type { AuditContext } from '../audit/record.js';
import { assertPasswordAllowed } from '../auth/password-policy.js';
import { hashPassword } from '../auth/passwords.js';
import { addRevoked, revokeSessions } from '../auth/revoke.js';
import { publishPasswordChanged, waitForPasswordVisible } from '../auth/store-password.js';
import { findUserById } from '../users/queries.js';
import type { ResetDeps } from './deps.js';
import { consumeResetToken, releaseResetToken } from './queries.js';
import { hashResetToken } from './tokens.js';

/** One answer for unknown, malformed, expired and used tokens: which one it was helps only an attacker. */
export const INVALID_RESET_TOKEN = 'Invalid or expired reset token';

/**
 * Sets a new password with a reset token and ends every session of the account (whoever asked for
 * the reset may be locked out because somebody else holds the account). Returns the revoked
 * session ids, which the gateway applies at once.
 */
export async function confirmPasswordReset(deps: ResetDeps, input: { token: string; newPassword: string }, context: AuditContext): Promise<string[]> {
  // Policy first: a refused password must not use up the token.
  await assertPasswordAllowed(input.newPassword);
  const usedAt = new Date();
  const consumed = await consumeResetToken(deps.pool, hashResetToken(input.token), usedAt);
  if (!consumed) throw new InvalidRequest(INVALID_RESET_TOKEN);
  const { resetId, userId } = consumed;

  let seq: number;
  try {
    const passwordHash = await hashPassword(input.newPassword);
    seq = await publishPasswordChanged(deps, { userId, passwordHash, reason: 'reset', correlationId: context.correlationId });
  } catch (error) {
    // The password did not change: give the token back, so a retry works without a new mail.
    await releaseResetToken(deps.pool, resetId).catch(() => {});
    throw error;
  }
  const revokedSessions = await revokeSessions(deps, userId, { allExcept: null }, 'password_reset', context.correlationId);
  await publishCompleted(deps, resetId, userId, usedAt, context.correlationId);
  // Mailbox control is proven: the account's failed-login counters and slowdown are cleared.
  const user = await findUserById(deps.pool, userId);
  if (user) await deps.throttle.forgetUser(user);
  const visible = await waitForPasswordVisible(deps, seq);
  // Again once the new hash is what logins check: a login with the old password that started its
  // session before that is ended too (insertSession).
  if (visible) addRevoked(revokedSessions, await revokeSessions(deps, userId, { allExcept: null }, 'password_reset', context.correlationId));
  await deps.audit.record(userId, 'password.reset.completed', context, { resetId, revokedSessions: revokedSessions.length });
  if (!visible) throw new Unavailable('The new password is stored but not active yet; try logging in with it shortly');
  return revokedSessions;
}

/**
 * Records the token's use in the stream. The row is already marked used, so a failure here does not
 * reopen the token; it is logged, because a rebuild before the token expires would.
 */
async function publishCompleted(deps: ResetDeps, resetId: string, userId: string, usedAt: Date, correlationId: string): Promise<void> {
  const event: PasswordResetCompleted = {
    type: 'PasswordResetCompleted',
    version: 1,
    data: { resetId, userId },
    meta: buildMeta({ eventId: newId(), occurredAt: usedAt, actorId: userId, correlationId }),
  };
  try {
    await publishEvent(deps.bus.js, subjects.reset(deps.namespace, userId), event, { msgId: `reset-completed:${resetId}` }, deps.metrics);
  } catch (error) {
    deps.log.error({ userId, resetId, err: (error as Error).message }, 'PasswordResetCompleted not stored; the token stays used in Postgres');
  }
}
