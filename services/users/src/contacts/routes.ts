import { Type } from '@sinclair/typebox';
import { publishEvent, waitForCheckpoint } from '@parley/bus';
import { buildMeta, newId, subjects, Uuid, type ContactAdded, type ContactRemoved } from '@parley/contracts';
import { InvalidRequest, NotFound, Unavailable, type ApiRouter } from '@parley/http';
import { contactsCacheKey } from '../users/cache-keys.js';
import { publicProfiles, type ProfileDeps } from '../users/profile.js';
import { CHECKPOINT_TABLE, USERS_PROJECTOR } from '../users/projection.js';
import { findUserById } from '../users/queries.js';
import { contactIds, isContact } from './queries.js';

/**
 * Contacts: events on the owner's subject, projected into users.contacts. The list is cached as
 * ids only (contacts:<id>, REDIS_CONTACTS_TTL) and resolved through the per-user profile cache, so
 * a contact's profile change shows at once: the projection deletes that user's key.
 */
export function contactRoutes(router: ApiRouter, deps: ProfileDeps & { contactsTtlSeconds: number }): void {
  const ids = async (userId: string): Promise<string[]> => {
    const cached = await deps.cache.getJson<string[]>(contactsCacheKey(userId));
    if (cached) return cached;
    const fresh = await contactIds(deps.pool, userId);
    await deps.cache.setJson(contactsCacheKey(userId), fresh, deps.contactsTtlSeconds);
    return fresh;
  };

  const change = async (type: 'ContactAdded' | 'ContactRemoved', userId: string, contactId: string, correlationId: string) => {
    const event = {
      type,
      version: 1 as const,
      data: { userId, contactId },
      meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: userId, correlationId }),
    } as ContactAdded | ContactRemoved;
    const ack = await publishEvent(deps.bus.js, subjects.user(deps.namespace, userId), event, { msgId: `contact:${event.meta.eventId}` });
    if (!(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, USERS_PROJECTOR, ack.seq))) throw new Unavailable('Stored but not yet visible; reload shortly');
  };

  router.route({
    method: 'GET',
    url: '/api/v1/contacts',
    handler: async ({ auth }) => ({ status: 200, body: { items: await publicProfiles(deps, await ids(auth.userId)), nextCursor: null } }),
  });

  router.route({
    method: 'POST',
    url: '/api/v1/contacts',
    schema: { body: Type.Object({ userId: Uuid }, { additionalProperties: false }) },
    handler: async ({ auth, body, request }) => {
      if (body.userId === auth.userId) throw new InvalidRequest('You cannot add yourself');
      if (!(await findUserById(deps.pool, body.userId))) throw new NotFound('No such user');
      // Adding an existing contact changes nothing and says so with 200.
      if (await isContact(deps.pool, auth.userId, body.userId)) return { status: 200, body: (await publicProfiles(deps, [body.userId]))[0] };
      await change('ContactAdded', auth.userId, body.userId, request.requestId);
      return { status: 201, body: (await publicProfiles(deps, [body.userId]))[0] };
    },
  });

  router.route({
    method: 'DELETE',
    url: '/api/v1/contacts/:userId',
    schema: { params: Type.Object({ userId: Uuid }) },
    handler: async ({ auth, params, request }) => {
      if (!(await isContact(deps.pool, auth.userId, params.userId))) throw new NotFound('No such contact');
      await change('ContactRemoved', auth.userId, params.userId, request.requestId);
      return { status: 204 };
    },
  });
}
