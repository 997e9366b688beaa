import { Type } from '@sinclair/typebox';
import { Audience, buildMeta, newId, Uuid, type PrivacyChanged, type UserBlocked, type UserUnblocked } from '@parley/contracts';
import { InvalidRequest, NotFound, type ApiRouter } from '@parley/http';
import { publicProfile, type ProfileDeps } from '../users/profile.js';
import { projectedUpToDate, publishUserEvent } from '../users/publish.js';
import { purgeLastSeen } from '../erasure/erase.js';
import { blockedBy, hasBlocked, privacyOf } from './queries.js';

const PrivacyBody = Type.Object({ groupAdd: Type.Optional(Audience), presence: Type.Optional(Audience) }, { additionalProperties: false, minProperties: 1 });

/**
 * Privacy settings and the block list (issue 23, finding 8), events on the owner's user subject
 * like contacts. What they change is decided elsewhere: users.admission (chats and groups, asked by
 * the messages service) and users.watchers (presence, asked by the gateway).
 */
export function privacyRoutes(router: ApiRouter, deps: ProfileDeps): void {
  const meta = (actorId: string, correlationId: string) => buildMeta({ eventId: newId(), occurredAt: new Date(), actorId, correlationId });

  router.route({
    method: 'GET',
    url: '/api/v1/users/me/privacy',
    handler: async ({ auth }) => {
      const settings = await privacyOf(deps.pool, auth.userId);
      if (!settings) throw new NotFound('No such user');
      return { status: 200, body: settings };
    },
  });

  router.route({
    method: 'PATCH',
    url: '/api/v1/users/me/privacy',
    schema: { body: PrivacyBody },
    handler: async ({ auth, body, request }) => {
      await projectedUpToDate(deps, auth.userId);
      const current = await privacyOf(deps.pool, auth.userId);
      if (!current) throw new NotFound('No such user');
      const changed = Object.fromEntries(Object.entries(body).filter(([k, v]) => current[k as keyof typeof current] !== v));
      if (Object.keys(changed).length > 0) {
        const event: PrivacyChanged = { type: 'PrivacyChanged', version: 1, data: { userId: auth.userId, ...changed }, meta: meta(auth.userId, request.requestId) };
        await publishUserEvent(deps, event, 'privacy');
      }
      // `nobody` keeps no last seen time: the one kept from before goes now, not at the user's
      // next going offline (a change back, with no socket open meanwhile, would have shown it).
      // Whenever `nobody` is asked for, not only when it changes: a retry after a 503 (the event
      // stored, the projection late) changes nothing, and skipped the purge.
      if (body.presence === 'nobody') await purgeLastSeen(deps.bus, deps.namespace, auth.userId);
      return { status: 200, body: { ...current, ...body } };
    },
  });

  router.route({
    method: 'GET',
    url: '/api/v1/users/me/blocks',
    handler: async ({ auth }) => ({ status: 200, body: { items: await blockedBy(deps.pool, auth.userId) } }),
  });

  router.route({
    method: 'POST',
    url: '/api/v1/users/me/blocks',
    schema: { body: Type.Object({ userId: Uuid }, { additionalProperties: false }) },
    handler: async ({ auth, body, request }) => {
      if (body.userId === auth.userId) throw new InvalidRequest('You cannot block yourself');
      // An erased account is no one to block (no new event names it), as in contacts.
      const blocked = await publicProfile(deps, body.userId);
      if (!blocked || blocked.deleted) throw new NotFound('No such user');
      await projectedUpToDate(deps, auth.userId);
      if (await hasBlocked(deps.pool, auth.userId, body.userId)) return { status: 200, body: { userId: body.userId } };
      const event: UserBlocked = { type: 'UserBlocked', version: 1, data: { userId: auth.userId, blockedId: body.userId }, meta: meta(auth.userId, request.requestId) };
      await publishUserEvent(deps, event, 'block');
      return { status: 201, body: { userId: body.userId } };
    },
  });

  router.route({
    method: 'DELETE',
    url: '/api/v1/users/me/blocks/:userId',
    schema: { params: Type.Object({ userId: Uuid }, { additionalProperties: false }) },
    handler: async ({ auth, params, request }) => {
      await projectedUpToDate(deps, auth.userId);
      if (!(await hasBlocked(deps.pool, auth.userId, params.userId))) throw new NotFound('Not blocked');
      const event: UserUnblocked = { type: 'UserUnblocked', version: 1, data: { userId: auth.userId, blockedId: params.userId }, meta: meta(auth.userId, request.requestId) };
      await publishUserEvent(deps, event, 'unblock');
      return { status: 204 };
    },
  });
}
