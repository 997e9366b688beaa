import type { TokenSigner } from '@parley/auth';
import type { Cache } from '@parley/cache';
import { identityKey, newId } from '@parley/contracts';
import { RateLimited, Unauthorized, type ApiRouter } from '@parley/http';
import type { Pool } from '@parley/pg';
import { auditContext, type AuditRecorder } from '../audit/record.js';
import { findUserById, findUserByLogin, toUserView } from '../users/queries.js';
import { burnPasswordCheck, verifyPassword } from './passwords.js';
import { formatRefreshToken, hashSecret, newRefreshSecret, nextRefreshSecret, parseRefreshToken } from './refresh-tokens.js';
import { registerUser, type RegisterDeps } from './register.js';
import { revokeSessions } from './revoke.js';
import { LoginBody, RefreshBody, RegisterBody } from './schemas.js';
import { findSessionUser, insertSession, rotateRefresh } from './sessions.js';
import { addressKeyPart, type AttemptThrottle, type LoginThrottle } from './throttle.js';

export interface AuthRouteDeps extends RegisterDeps {
  pool: Pool;
  cache: Cache;
  signer: TokenSigner;
  refreshTtlSeconds: number;
  /** Derives each rotation's refresh secret from the last (refresh-tokens.ts refreshChainKey). */
  refreshChainKey: Buffer;
  /** Refreshes with a secret not the session's current one, per client address and window. */
  refreshThrottle: AttemptThrottle;
  refreshMaxFailures: number;
  audit: AuditRecorder;
  throttle: LoginThrottle;
  /** Registrations per client address and window (REGISTER_MAX_PER_ADDRESS). */
  registerThrottle: AttemptThrottle;
  registerMaxPerAddress: number;
  /** Mails the verification link of a new account. */
  sendVerification: (user: { id: string; email: string }) => Promise<void>;
}

export function authRoutes(router: ApiRouter, deps: AuthRouteDeps): void {
  /** `verifiedHash`: the password hash a login checked, which must still be the account's (insertSession). */
  const startSession = async (userId: string, emailVerified: boolean, verifiedHash?: string) => {
    const sessionId = newId();
    const secret = newRefreshSecret();
    const started = await insertSession(deps.pool, {
      id: sessionId,
      userId,
      refreshHash: hashSecret(secret),
      expiresAt: new Date(Date.now() + deps.refreshTtlSeconds * 1000),
      ...(verifiedHash === undefined ? {} : { verifiedHash }),
    });
    // The account is being erased, or its password changed since it was checked: as if wrong.
    if (!started) throw new Unauthorized('Wrong login or password', 'invalid_credentials');
    return {
      sessionId,
      tokens: { accessToken: await deps.signer.sign({ userId, sessionId, emailVerified }), refreshToken: formatRefreshToken(sessionId, secret) },
    };
  };

  router.route({
    method: 'POST',
    url: '/api/v1/auth/register',
    authenticated: false,
    schema: { body: RegisterBody },
    handler: async ({ body, request }) => {
      // Every attempt counts, taken or not: `email_taken` must not be a fast oracle of addresses.
      const client = addressKeyPart(request.ip);
      const wait = await deps.registerThrottle.reserve([{ key: `register-address:${client}`, max: deps.registerMaxPerAddress }]);
      if (wait !== null) {
        // Once per client and window: an entry per refusal (kept 90 days, replicated) made the
        // throttle's refusals a way to fill the audit stream.
        if ((await deps.registerThrottle.reserve([{ key: `register-refused:${client}`, max: 1 }])) === null) {
          await deps.audit.record(null, 'registration.throttled', auditContext(request), {});
        }
        throw new RateLimited(wait, 'Too many registrations from this address; try again later');
      }
      const { userId } = await registerUser(deps, body, request.requestId);
      const user = await findUserById(deps.pool, userId);
      if (!user) throw new Error('registered user missing from projection');
      const { sessionId, tokens } = await startSession(userId, false);
      await deps.sendVerification(user);
      await deps.audit.record(userId, 'user.registered', auditContext(request), { sessionId });
      return { status: 201, body: { user: toUserView(user), ...tokens } };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/auth/login',
    authenticated: false,
    schema: { body: LoginBody },
    handler: async ({ body, request }) => {
      const user = await findUserByLogin(deps.pool, body.login);
      // Throttled by what was typed, known or not: the two cases behave alike from outside, and an
      // account's username and e-mail do not share a counter that would link them (LoginThrottle).
      const accountKey = identityKey(body.login);
      // Counted before the password is checked (a burst cannot pass the limit together).
      const wait = await deps.throttle.reserve(accountKey, request.ip);
      if (wait !== null) throw new RateLimited(wait, 'Too many failed logins; try again later');
      // Same work and the same answer whether or not the account exists (no enumeration).
      const ok = user ? await verifyPassword(user.password_hash, body.password) : await burnPasswordCheck(body.password);
      if (!user || !ok) {
        await deps.audit.record(user?.id ?? null, 'login.failed', auditContext(request), {});
        throw new Unauthorized('Wrong login or password', 'invalid_credentials');
      }
      await deps.throttle.recordSuccess(accountKey, request.ip);
      const { sessionId, tokens } = await startSession(user.id, user.email_verified, user.password_hash);
      await deps.audit.record(user.id, 'login.succeeded', auditContext(request), { sessionId });
      return { status: 200, body: { user: toUserView(user), ...tokens } };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/auth/refresh',
    authenticated: false,
    schema: { body: RefreshBody },
    handler: async ({ body, request }) => {
      const parsed = parseRefreshToken(body.refreshToken);
      if (!parsed) throw new Unauthorized('Invalid refresh token');
      const next = (secret: string) => nextRefreshSecret(deps.refreshChainKey, secret);
      // A secret that is not the session's current one is followed along its chain (thousands of
      // hashes): counted per client, as failed logins are, so that made-up secrets cannot keep the
      // service busy (the endpoint is public).
      const walkAllowed = async () => {
        const wait = await deps.refreshThrottle.reserve([{ key: `refresh-address:${addressKeyPart(request.ip)}`, max: deps.refreshMaxFailures }]);
        if (wait !== null) throw new RateLimited(wait, 'Too many failed refreshes; try again later');
      };
      const outcome = await rotateRefresh(deps.pool, parsed.sessionId, parsed.secret, next, walkAllowed);
      const userId = await findSessionUser(deps.pool, parsed.sessionId);
      if (outcome === 'reused' && userId) {
        await revokeSessions(deps, userId, { sessionId: parsed.sessionId }, 'refresh_token_reuse', request.requestId);
        await deps.audit.record(userId, 'refresh.reused', auditContext(request), { sessionId: parsed.sessionId });
      }
      const user = outcome === 'rotated' && userId ? await findUserById(deps.pool, userId) : null;
      if (!user) throw new Unauthorized('Invalid refresh token');
      return {
        status: 200,
        body: {
          accessToken: await deps.signer.sign({ userId: user.id, sessionId: parsed.sessionId, emailVerified: user.email_verified }),
          refreshToken: formatRefreshToken(parsed.sessionId, next(parsed.secret)),
        },
      };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/auth/logout',
    handler: async ({ auth, request }) => {
      const revokedSessions = await revokeSessions(deps, auth.userId, { sessionId: auth.sessionId }, 'logout', request.requestId);
      await deps.audit.record(auth.userId, 'logout', auditContext(request), { sessionId: auth.sessionId });
      return { status: 204, revokedSessions };
    },
  });
}
