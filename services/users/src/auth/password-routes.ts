import type { Cache } from '@parley/cache';
import { Unavailable, type ApiRouter } from '@parley/http';
import { auditContext, type AuditRecorder } from '../audit/record.js';
import { confirmPassword } from './confirm-password.js';
import { assertPasswordAllowed } from './password-policy.js';
import { hashPassword } from './passwords.js';
import { addRevoked, revokeSessions } from './revoke.js';
import { ChangePasswordBody } from './schemas.js';
import { publishPasswordChanged, waitForPasswordVisible, type StorePasswordDeps } from './store-password.js';
import type { LoginThrottle } from './throttle.js';

export interface PasswordRouteDeps extends StorePasswordDeps {
  cache: Cache;
  audit: AuditRecorder;
  reauthThrottle: LoginThrottle;
}

/** POST /api/v1/users/me/password: change the password, knowing the current one. */
export function passwordRoutes(router: ApiRouter, deps: PasswordRouteDeps): void {
  router.route({
    method: 'POST',
    url: '/api/v1/users/me/password',
    schema: { body: ChangePasswordBody },
    handler: async ({ auth, body, request }) => {
      await assertPasswordAllowed(body.newPassword);
      await confirmPassword(deps, auth.userId, request.ip, body.currentPassword, 'The current password is wrong');
      const passwordHash = await hashPassword(body.newPassword);
      const seq = await publishPasswordChanged(deps, { userId: auth.userId, passwordHash, reason: 'change', correlationId: request.requestId });
      // Whoever else holds a session may be the reason for the change: end them all but this one,
      // whether or not the projection has caught up yet.
      const revokedSessions = await revokeSessions(deps, auth.userId, { allExcept: auth.sessionId }, 'password_changed', request.requestId);
      const visible = await waitForPasswordVisible(deps, seq);
      // Again once the new hash is what logins check: a login with the old password that started
      // its session before that is ended too (insertSession).
      if (visible) addRevoked(revokedSessions, await revokeSessions(deps, auth.userId, { allExcept: auth.sessionId }, 'password_changed', request.requestId));
      await deps.audit.record(auth.userId, 'password.changed', auditContext(request), { sessionId: auth.sessionId, revokedSessions: revokedSessions.length });
      if (!visible) throw new Unavailable('The new password is stored but not active yet; try logging in with it shortly');
      return { status: 204, revokedSessions };
    },
  });
}
