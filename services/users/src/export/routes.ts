import { callRpc } from '@parley/bus';
import { EXPORT_TIMEOUT_MS } from '@parley/contracts';
import { NotFound, type ApiRouter } from '@parley/http';
import { findUserById, toUserView } from '../users/queries.js';
import type { ProfileDeps } from '../users/profile.js';
import { privacyOf } from '../privacy/queries.js';
import { auditOf, blocksOf, contactsOf, sessionsOf } from './queries.js';

/**
 * GET /api/v1/users/me/export: every datum held about the caller (GDPR portability), as one JSON
 * document: profile (with e-mail), contacts, privacy settings, blocks, sessions (metadata), the security log, and, from the
 * messages service over the internal `messages.export` request, the caller's chats and what they
 * wrote, reacted, voted and read. Read from Postgres, never the cache: an export must be current.
 *
 * Never included: the password hash, refresh-token hashes, reset-token hashes (each query names
 * its columns, so a new secret column cannot slip in by `SELECT *`).
 */
export function exportRoutes(router: ApiRouter, deps: ProfileDeps & { serviceTimeoutMs?: number }): void {
  router.route({
    method: 'GET',
    url: '/api/v1/users/me/export',
    handler: async ({ auth, proof }) => {
      const me = await findUserById(deps.pool, auth.userId);
      if (!me) throw new NotFound('No such user');
      const [contacts, privacy, blocks, sessions, securityLog, conversations] = await Promise.all([
        contactsOf(deps.pool, auth.userId),
        privacyOf(deps.pool, auth.userId),
        blocksOf(deps.pool, auth.userId),
        sessionsOf(deps.pool, auth.userId),
        auditOf(deps.pool, auth.userId),
        callRpc(
          deps.bus,
          deps.namespace,
          'messages.export',
          // The user's own signed request is what lets messages answer for them.
          { userId: auth.userId, proof },
          // Generous: a long-time user's history is one large query, still far below a client
          // timeout. The gateway waits longer for this route (EXPORT_GATEWAY_TIMEOUT_MS).
          deps.serviceTimeoutMs ?? EXPORT_TIMEOUT_MS,
        ),
      ]);
      return {
        status: 200,
        headers: { 'content-disposition': 'attachment; filename="parley-export.json"' },
        body: {
          exportedAt: new Date().toISOString(),
          profile: toUserView(me, true),
          contacts,
          // The settings and blocks the caller chose (they were left out: GDPR portability covers them).
          privacy,
          blocks,
          sessions,
          securityLog,
          ...conversations,
        },
      };
    },
  });
}
