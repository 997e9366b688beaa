import { requestJson } from '@parley/bus';
import { subjects, type RpcMethods } from '@parley/contracts';
import { NotFound, type ApiRouter } from '@parley/http';
import { auditPage } from '../audit/queries.js';
import { contactIds } from '../contacts/queries.js';
import { findUsersByIds, findUserById, toUserView } from '../users/queries.js';
import type { ProfileDeps } from '../users/profile.js';
import { sessionsOf } from './queries.js';

/**
 * GET /api/v1/users/me/export: every datum held about the caller (GDPR portability), as JSON:
 * profile, contacts, sessions (metadata, never hashes), security log, and from the messages service
 * the caller's chats and the messages they sent. Password and token hashes are never included.
 */
export function exportRoutes(router: ApiRouter, deps: ProfileDeps & { serviceTimeoutMs?: number }): void {
  router.route({
    method: 'GET',
    url: '/api/v1/users/me/export',
    handler: async ({ auth }) => {
      const me = await findUserById(deps.pool, auth.userId);
      if (!me) throw new NotFound('No such user');
      const contacts = await findUsersByIds(deps.pool, await contactIds(deps.pool, auth.userId));
      const conversations = await requestJson<RpcMethods['messages.export']['res']>(
        deps.bus.nc,
        subjects.rpc(deps.namespace, 'messages', 'export'),
        { userId: auth.userId } satisfies RpcMethods['messages.export']['req'],
        deps.serviceTimeoutMs ?? 30_000,
      );
      return {
        status: 200,
        headers: { 'content-disposition': 'attachment; filename="parley-export.json"' },
        body: {
          exportedAt: new Date().toISOString(),
          profile: toUserView(me, true),
          contacts: contacts.map((c) => ({ id: c.id, username: c.username, displayName: c.display_name })),
          sessions: await sessionsOf(deps.pool, auth.userId),
          securityLog: (await auditPage(deps.pool, auth.userId, 10_000, null)).map((r) => ({
            action: r.action,
            ip: r.ip,
            userAgent: r.user_agent,
            at: r.occurred_at.toISOString(),
          })),
          chats: conversations.chats,
          messages: conversations.messages,
        },
      };
    },
  });
}
