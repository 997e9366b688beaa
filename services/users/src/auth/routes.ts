import type { TokenSigner } from '@parley/auth';
import { newId } from '@parley/contracts';
import { Unauthorized, type ApiRouter } from '@parley/http';
import type { Pool } from '@parley/pg';
import { findUserById, findUserByLogin, toUserView } from '../users/queries.js';
import { burnPasswordCheck, verifyPassword } from './passwords.js';
import { formatRefreshToken, hashSecret, newRefreshSecret, parseRefreshToken } from './refresh-tokens.js';
import { LoginBody, RefreshBody, RegisterBody } from './schemas.js';
import { findSessionUser, insertSession, rotateRefresh } from './sessions.js';
import { registerUser, type RegisterDeps } from './register.js';

export interface AuthRouteDeps extends RegisterDeps {
  pool: Pool;
  signer: TokenSigner;
  refreshTtlSeconds: number;
}

export function authRoutes(router: ApiRouter, deps: AuthRouteDeps): void {
  const startSession = async (userId: string) => {
    const sessionId = newId();
    const secret = newRefreshSecret();
    await insertSession(deps.pool, {
      id: sessionId,
      userId,
      refreshHash: hashSecret(secret),
      expiresAt: new Date(Date.now() + deps.refreshTtlSeconds * 1000),
    });
    return {
      accessToken: await deps.signer.sign({ userId, sessionId }),
      refreshToken: formatRefreshToken(sessionId, secret),
    };
  };

  router.route({
    method: 'POST',
    url: '/api/v1/auth/register',
    authenticated: false,
    schema: { body: RegisterBody },
    handler: async ({ body, request }) => {
      const { userId } = await registerUser(deps, body, request.requestId);
      const user = await findUserById(deps.pool, userId);
      if (!user) throw new Error('registered user missing from projection');
      return { status: 201, body: { user: toUserView(user, true), ...(await startSession(userId)) } };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/auth/login',
    authenticated: false,
    schema: { body: LoginBody },
    handler: async ({ body }) => {
      const user = await findUserByLogin(deps.pool, body.login);
      // Same work and the same answer whether or not the account exists (no enumeration).
      const ok = user ? await verifyPassword(user.password_hash, body.password) : await burnPasswordCheck(body.password);
      if (!user || !ok) throw new Unauthorized('Wrong login or password', 'invalid_credentials');
      return { status: 200, body: { user: toUserView(user, true), ...(await startSession(user.id)) } };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/auth/refresh',
    authenticated: false,
    schema: { body: RefreshBody },
    handler: async ({ body }) => {
      const parsed = parseRefreshToken(body.refreshToken);
      if (!parsed) throw new Unauthorized('Invalid refresh token');
      const nextSecret = newRefreshSecret();
      const outcome = await rotateRefresh(deps.pool, parsed.sessionId, hashSecret(parsed.secret), hashSecret(nextSecret));
      if (outcome !== 'rotated') throw new Unauthorized('Invalid refresh token');
      const userId = await findSessionUser(deps.pool, parsed.sessionId);
      if (!userId || !(await findUserById(deps.pool, userId))) throw new Unauthorized('Invalid refresh token');
      return {
        status: 200,
        body: {
          accessToken: await deps.signer.sign({ userId, sessionId: parsed.sessionId }),
          refreshToken: formatRefreshToken(parsed.sessionId, nextSecret),
        },
      };
    },
  });
}
