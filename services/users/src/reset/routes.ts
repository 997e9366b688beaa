import { identityKey } from '@parley/contracts';
import { RateLimited, type ApiRouter } from '@parley/http';
import { addressKeyPart, keyPart, type AttemptThrottle } from '../auth/throttle.js';
import { auditContext } from '../audit/record.js';
import type { BackgroundTasks } from '../background.js';
import { confirmPasswordReset } from './confirm.js';
import type { ResetDeps } from './deps.js';
import { requestPasswordReset } from './request.js';
import { ResetConfirmBody, ResetRequestBody } from './schemas.js';

/** The one answer to every reset request, whether or not an account uses the address. */
const ACCEPTED = { message: 'If an account uses this address, a reset link is on its way to it.' } as const;

/** api.md's password-reset pair (public routes). */
export function resetRoutes(
  router: ApiRouter,
  deps: ResetDeps & { background: BackgroundTasks; requestThrottle: AttemptThrottle; requestLimits: { perAccount: number; perAddress: number } },
): void {
  router.route({
    method: 'POST',
    url: '/api/v1/auth/password-reset/request',
    authenticated: false,
    schema: { body: ResetRequestBody },
    handler: async ({ body, request }) => {
      // Answered before any lookup: same status, body and timing for known and unknown addresses.
      // Counted per typed address and per client (each request is a mail): known and unknown alike.
      // Per typed address (a mail each to it, known or not alike) and per client address.
      const wait = await deps.requestThrottle.reserve([
        { key: `reset-account:${keyPart(identityKey(body.email))}`, max: deps.requestLimits.perAccount },
        { key: `reset-address:${addressKeyPart(request.ip)}`, max: deps.requestLimits.perAddress },
      ]);
      if (wait !== null) throw new RateLimited(wait, 'Too many reset requests; try again later');
      const context = auditContext(request);
      deps.background.run('password-reset request', () => requestPasswordReset(deps, body.email, context));
      return { status: 202, body: ACCEPTED };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/auth/password-reset/confirm',
    authenticated: false,
    schema: { body: ResetConfirmBody },
    handler: async ({ body, request }) => {
      const revokedSessions = await confirmPasswordReset(deps, body, auditContext(request));
      return { status: 204, revokedSessions };
    },
  });
}
