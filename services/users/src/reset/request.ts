import { publishEvent } from '@parley/bus';
import { waitForCheckpoint } from '@parley/projector-pg';
import { buildMeta, newId, subjects, type PasswordResetRequested } from '@parley/contracts';
import type { AuditContext } from '../audit/record.js';
import { CHECKPOINT_TABLE } from '../users/projection.js';
import { findUserByLogin } from '../users/queries.js';
import type { ResetDeps } from './deps.js';
import { resetMail } from './mail.js';
import { RESETS_PROJECTOR } from './projection.js';
import { newResetToken } from './tokens.js';

/**
 * Issues a reset token and mails it, if an account uses `email`. Runs after the 202 has been sent
 * (routes.ts), so neither the answer nor its timing says whether the account exists, and a slow
 * SMTP server never holds up the client.
 *
 * The token is in the mail and nowhere else: not in the event (its SHA-256 is), not in a log line,
 * not in the audit entry.
 */
export async function requestPasswordReset(deps: ResetDeps, email: string, context: AuditContext): Promise<void> {
  // The schema's e-mail pattern needs an '@', which usernames cannot contain, so this matches
  // e-mail addresses only (case-insensitively).
  const user = await findUserByLogin(deps.pool, email);
  if (!user) {
    await deps.audit.record(null, 'password.reset.requested', context, {});
    return;
  }
  const { token, hash } = newResetToken();
  const resetId = newId();
  const now = new Date();
  const event: PasswordResetRequested = {
    type: 'PasswordResetRequested',
    version: 1,
    data: { resetId, userId: user.id, tokenHash: hash.toString('hex'), expiresAt: new Date(now.getTime() + deps.tokenTtlSeconds * 1000).toISOString() },
    meta: buildMeta({ eventId: newId(), occurredAt: now, actorId: null, correlationId: context.correlationId }),
  };
  const ack = await publishEvent(deps.bus.js, subjects.reset(deps.namespace, user.id), event, { msgId: `reset:${resetId}` }, deps.metrics);
  // The link must work when it arrives, so the row should exist first. If the projection lags, the
  // mail goes anyway: the token becomes usable as soon as the projection catches up.
  if (!(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, RESETS_PROJECTOR, ack.seq))) {
    deps.log.warn({ userId: user.id, resetId }, 'reset token not projected yet; mailing it anyway');
  }
  let mailSent = true;
  try {
    await deps.mailer.send(resetMail(user.email, token, deps.publicUrl, deps.tokenTtlSeconds));
    deps.log.info({ userId: user.id, resetId }, 'password-reset mail sent');
  } catch (error) {
    mailSent = false;
    deps.log.error({ userId: user.id, resetId, err: (error as Error).message }, 'password-reset mail not sent');
  }
  await deps.audit.record(user.id, 'password.reset.requested', context, { resetId, mailSent });
}
