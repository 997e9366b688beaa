import { Type } from '@sinclair/typebox';
import type { ApiRouter } from '@parley/http';
import { auditContext, type AuditRecorder } from '../audit/record.js';
import { confirmPassword } from '../auth/confirm-password.js';
import type { LoginThrottle } from '../auth/throttle.js';
import { eraseAccount, type EraseDeps } from './erase.js';

const DeleteMe = Type.Object(
  { password: Type.String({ minLength: 1, maxLength: 1024 }), purgeMessages: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);

/** DELETE /api/v1/users/me: erasure on request (GDPR art. 17), confirmed with the password. */
export function erasureRoutes(router: ApiRouter, deps: EraseDeps & { audit: AuditRecorder; reauthThrottle: LoginThrottle }): void {
  router.route({
    method: 'DELETE',
    url: '/api/v1/users/me',
    schema: { body: DeleteMe },
    handler: async ({ auth, body, request }) => {
      const user = await confirmPassword(deps, auth.userId, request.ip, body.password, 'The password is wrong');
      await eraseAccount(deps, user, body.purgeMessages ?? false, request.requestId);
      // Kept 90 days like every audit entry; it names the id only, which the ledger holds anyway:
      // not the address or browser the erasure came from (the person's, kept after they asked for
      // everything to go).
      await deps.audit.record(user.id, 'account.deleted', { ...auditContext(request), ip: '', userAgent: '' }, { purgeMessages: body.purgeMessages ?? false });
      return { status: 202 };
    },
  });
}
