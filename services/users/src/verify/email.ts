import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { publishEvent } from '@parley/bus';
import { buildMeta, identityKey, newId, subjects, type EmailVerified } from '@parley/contracts';
import { InvalidRequest, RateLimited, Unavailable, type ApiRouter } from '@parley/http';
import type { Logger } from '@parley/log';
import { waitForCheckpoint } from '@parley/projector-pg';
import { auditContext, type AuditRecorder } from '../audit/record.js';
import type { StorePasswordDeps } from '../auth/store-password.js';
import { keyPart, type AttemptThrottle } from '../auth/throttle.js';
import type { BackgroundTasks } from '../background.js';
import { tokenLink, type Mail, type Mailer } from '../mail/mailer.js';
import { CHECKPOINT_TABLE, USERS_PROJECTOR } from '../users/projection.js';
import { findUserById, type UserRow } from '../users/queries.js';

/**
 * E-mail verification (issue 23, finding 5): proof that the owner of an account receives mail at
 * its address. A verification mail goes out on registration and on request; its link carries a
 * token that names the account and the address and expires. The token is stateless (an HMAC
 * under a key derived from JWT_SECRET, which only users holds besides the gateway): nothing to
 * store, and verifying twice changes nothing. It binds the address, so a token for an address the
 * account no longer has does not verify the new one.
 *
 * What an unverified account may not do is the operator's choice (REQUIRE_VERIFIED_EMAIL, off by
 * default): the access token says whether the address is verified, and the gateway refuses
 * starting chats and adding contacts without it.
 */
export interface VerifyDeps extends StorePasswordDeps {
  log: Logger;
  audit: AuditRecorder;
  mailer: Mailer;
  background: BackgroundTasks;
  /** JWT_SECRET: the verification key is derived from it. */
  secret: string;
  publicUrl: string;
  ttlSeconds: number;
  /** Verification mails per account and window (VERIFY_EMAIL_MAX_REQUESTS). */
  requestThrottle: AttemptThrottle;
  maxRequests: number;
}

const VerifyBody = Type.Object({ token: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false });
const INVALID = 'Invalid or expired verification link';

const macKey = (secret: string) => createHash('sha256').update(`parley e-mail verification\n${secret}`).digest();

export function verificationToken(secret: string, userId: string, email: string, expiresAtMs: number): string {
  const payload = Buffer.from(JSON.stringify({ u: userId, e: keyPart(identityKey(email)), x: expiresAtMs })).toString('base64url');
  const mac = createHmac('sha256', macKey(secret)).update(payload).digest('base64url');
  return `${payload}.${mac}`;
}

/** The account a token verifies, if its MAC holds and it has not expired; the address is checked by the caller. */
function readToken(secret: string, token: string): { userId: string; emailKey: string } | null {
  const [payload, mac, extra] = token.split('.');
  if (!payload || !mac || extra !== undefined) return null;
  const expected = createHmac('sha256', macKey(secret)).update(payload).digest();
  const given = Buffer.from(mac, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  try {
    const { u, e, x } = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { u: unknown; e: unknown; x: unknown };
    if (typeof u !== 'string' || typeof e !== 'string' || typeof x !== 'number' || x < Date.now()) return null;
    return { userId: u, emailKey: e };
  } catch {
    return null;
  }
}

export function verificationMail(to: string, token: string, publicUrl: string, ttlSeconds: number): Mail {
  const link = tokenLink(publicUrl, 'verify-email', token);
  const hours = Math.max(1, Math.round(ttlSeconds / 3600));
  return {
    to,
    subject: 'Confirm your e-mail address for Parley',
    text: [
      'Someone (hopefully you) gave this address for a Parley account.',
      '',
      'To confirm that it is yours, open:',
      link,
      '',
      `The link works for ${hours} hour${hours === 1 ? '' : 's'}. If you did not sign up, ignore this mail.`,
      '',
    ].join('\n'),
  };
}

/**
 * The counter of verification mails to one address, whichever account asks: a new account was a
 * fresh count (per account id), so registering, deleting and registering again mailed an address
 * without end (bounded only per client address).
 */
const mailsTo = (email: string) => `verify-address:${keyPart(identityKey(email))}`;
/** Mails to one address: an account's registration mail and the resends it may ask for. */
const perAddress = (deps: VerifyDeps) => deps.maxRequests + 1;

/**
 * Mails a verification link to the account's address, after the answer (a slow SMTP server holds
 * nobody up). `counted`: the caller already counted it against the address's limit; otherwise it
 * is counted here, before the answer, and not sent past the limit (registration: the account is
 * made all the same, and its owner may ask again later).
 */
export async function sendVerification(deps: VerifyDeps, user: Pick<UserRow, 'id' | 'email'>, counted = false): Promise<void> {
  if (!counted) {
    // The account exists by now: a count that cannot be taken costs the mail, not the answer.
    const wait = await deps.requestThrottle.reserve([{ key: mailsTo(user.email), max: perAddress(deps) }]).catch((error: unknown) => {
      deps.log.error({ userId: user.id, err: (error as Error).message }, 'verification mail not counted, so not sent');
      return 0;
    });
    if (wait !== null) {
      if (wait > 0) deps.log.warn({ userId: user.id }, 'verification mail not sent: too many to this address lately');
      return;
    }
  }
  deps.background.run('e-mail verification', async () => {
    const token = verificationToken(deps.secret, user.id, user.email, Date.now() + deps.ttlSeconds * 1000);
    try {
      await deps.mailer.send(verificationMail(user.email, token, deps.publicUrl, deps.ttlSeconds));
      deps.log.info({ userId: user.id }, 'verification mail sent');
    } catch (error) {
      deps.log.error({ userId: user.id, err: (error as Error).message }, 'verification mail not sent');
    }
  });
}

export function verifyRoutes(router: ApiRouter, deps: VerifyDeps): void {
  router.route({
    method: 'POST',
    url: '/api/v1/users/me/email/verification',
    handler: async ({ auth, request }) => {
      const user = await findUserById(deps.pool, auth.userId);
      if (!user) throw new InvalidRequest('No such account');
      if (user.email_verified) return { status: 204 };
      const wait = await deps.requestThrottle.reserve([
        { key: `verify-account:${keyPart(user.id)}`, max: deps.maxRequests },
        { key: mailsTo(user.email), max: perAddress(deps) },
      ]);
      if (wait !== null) throw new RateLimited(wait, 'Too many verification mails; try again later');
      await sendVerification(deps, user, true);
      await deps.audit.record(user.id, 'email.verification.requested', auditContext(request), {});
      return { status: 202 };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/auth/verify-email',
    authenticated: false,
    schema: { body: VerifyBody },
    handler: async ({ body, request }) => {
      const claim = readToken(deps.secret, body.token);
      const user = claim && (await findUserById(deps.pool, claim.userId));
      // One answer for a forged, expired, foreign-address or erased-account token.
      if (!claim || !user || keyPart(identityKey(user.email)) !== claim.emailKey) throw new InvalidRequest(INVALID);
      if (user.email_verified) return { status: 204 };
      const event: EmailVerified = {
        type: 'EmailVerified',
        version: 1,
        data: { userId: user.id },
        meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: user.id, correlationId: request.requestId }),
      };
      // One per account and address: a second click is deduplicated by JetStream.
      const ack = await publishEvent(deps.bus.js, subjects.user(deps.namespace, user.id), event, { msgId: `verify:${user.id}:${claim.emailKey}` }, deps.metrics);
      await deps.audit.record(user.id, 'email.verified', auditContext(request), {});
      if (!(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, USERS_PROJECTOR, ack.seq))) {
        throw new Unavailable('The address is verified but not shown yet; look again shortly');
      }
      return { status: 204 };
    },
  });
}
