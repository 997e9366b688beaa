import { Type } from '@sinclair/typebox';
import { RateLimited, Unauthorized, type ApiRouter } from '@parley/http';
import { auditContext, type AuditRecorder } from '../audit/record.js';
import { verifyPassword } from '../auth/passwords.js';
import type { LoginThrottle } from '../auth/throttle.js';
import { findUserById } from '../users/queries.js';
import { eraseAccount, type EraseDeps } from './erase.js';

const DeleteMe = Type.Object(
  { password: Type.String({ minLength: 1, maxLength: 1024 }), purgeMessages: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);

/** DELETE /api/v1/users/me: erasure on request (GDPR art. 17), confirmed with the password. */
export function erasureRoutes(router: ApiRouter, deps: EraseDeps & { audit: AuditRecorder; throttle: LoginThrottle }): void {
  router.route({
    method: 'DELETE',
    url: '/api/v1/users/me',
    schema: { body: DeleteMe },
    handler: async ({ auth, body, request }) => {
      // A stolen access token must not erase the account, nor guess the password: wrong passwords
      // count as failed logins, as on a password change.
      const wait = await deps.throttle.retryAfter(auth.userId, request.ip);
      if (wait !== null) throw new RateLimited(wait, 'Too many failed attempts; try again later');
      const user = await findUserById(deps.pool, auth.userId);
      if (!user) throw new Unauthorized();
      if (!(await verifyPassword(user.password_hash, body.password))) {
        await deps.throttle.recordFailure(auth.userId, request.ip);
        throw new Unauthorized('The password is wrong', 'invalid_credentials');
      }
      await eraseAccount(deps, user, body.purgeMessages ?? false, request.requestId);
      // Kept 90 days like every audit entry; it names the id only, which the ledger holds anyway.
      await deps.audit.record(user.id, 'account.deleted', auditContext(request), { purgeMessages: body.purgeMessages ?? false });
      return { status: 202 };
    },
  });
}
