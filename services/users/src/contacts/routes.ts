import { Type } from '@sinclair/typebox';
import { buildMeta, isId, newId, Uuid, type ContactAdded, type ContactRemoved } from '@parley/contracts';
import { cursorField, decodeCursor, encodeCursor, InvalidRequest, NotFound, pageLimit, PageQuery, type ApiRouter } from '@parley/http';
import { contactsCacheKey } from '../users/cache-keys.js';
import { publicProfile, publicProfiles, type ProfileDeps } from '../users/profile.js';
import { projectedUpToDate, publishUserEvent } from '../users/publish.js';
import { contactIds, isContact } from './queries.js';

/** Where the next page starts: after contact `after`, which was at position `at` of the list. */
type Cursor = { after: string; at: number };
const isCursor = (v: unknown): v is Cursor =>
  typeof v === 'object' && v !== null && isId((v as Cursor).after) && cursorField.int((v as Cursor).at, 0, Number.MAX_SAFE_INTEGER);

/**
 * Contacts: ContactAdded / ContactRemoved on the owner's user subject, projected into
 * users.contacts. The list is cached as ids only (contacts:<id>, REDIS_CONTACTS_TTL) and resolved
 * through the per-user profile cache (user:<id>), with one Postgres query for the misses: a
 * contact's profile change shows at once because the projection deletes that one user key, and
 * no contact list has to be found and invalidated.
 *
 * Adding an existing contact answers 200 (not 201) and publishes nothing; removing a user who is
 * not a contact is 404.
 */
export function contactRoutes(router: ApiRouter, deps: ProfileDeps & { contactsTtlSeconds: number }): void {
  const ids = async (userId: string): Promise<string[]> => {
    const cached = await deps.cache.lookup<string[]>(contactsCacheKey(userId));
    if (cached.value) return cached.value;
    const fresh = await contactIds(deps.pool, userId);
    await cached.fill(fresh, deps.contactsTtlSeconds);
    return fresh;
  };

  const change = async (type: 'ContactAdded' | 'ContactRemoved', userId: string, contactId: string, correlationId: string) => {
    const event = {
      type,
      version: 1 as const,
      data: { userId, contactId },
      meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: userId, correlationId }),
    } as ContactAdded | ContactRemoved;
    await publishUserEvent(deps, event, 'contact');
  };

  router.route({
    method: 'GET',
    url: '/api/v1/contacts',
    schema: { query: Type.Object(PageQuery, { additionalProperties: false }) },
    handler: async ({ auth, query }) => {
      const limit = pageLimit(query.limit);
      const cursor = decodeCursor(query.before, isCursor);
      const all = await ids(auth.userId);
      // Keyset on the list's order (oldest contact first). If the cursor's contact was removed
      // meanwhile, its old position is the best place to go on from.
      let start = 0;
      if (cursor) {
        const index = all.indexOf(cursor.after);
        start = index >= 0 ? index + 1 : Math.min(cursor.at, all.length);
      }
      const page = all.slice(start, start + limit);
      const last = page[page.length - 1];
      const more = start + limit < all.length;
      return {
        status: 200,
        body: {
          items: await publicProfiles(deps, page),
          nextCursor: more && last ? encodeCursor({ after: last, at: start + page.length - 1 } satisfies Cursor) : null,
        },
      };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/contacts',
    schema: { body: Type.Object({ userId: Uuid }, { additionalProperties: false }) },
    handler: async ({ auth, body, request }) => {
      if (body.userId === auth.userId) throw new InvalidRequest('You cannot add yourself as a contact');
      const contact = await publicProfile(deps, body.userId);
      // An erased account shows as "deleted" where it is named already, but no new event names it.
      if (!contact || contact.deleted) throw new NotFound('No such user');
      // Idempotent: asking again changes nothing and says so with 200.
      await projectedUpToDate(deps, auth.userId);
      if (await isContact(deps.pool, auth.userId, body.userId)) return { status: 200, body: contact };
      await change('ContactAdded', auth.userId, body.userId, request.requestId);
      return { status: 201, body: contact };
    },
  });

  router.route({
    method: 'DELETE',
    url: '/api/v1/contacts/:userId',
    schema: { params: Type.Object({ userId: Uuid }, { additionalProperties: false }) },
    handler: async ({ auth, params, request }) => {
      await projectedUpToDate(deps, auth.userId);
      if (!(await isContact(deps.pool, auth.userId, params.userId))) throw new NotFound('No such contact');
      await change('ContactRemoved', auth.userId, params.userId, request.requestId);
      return { status: 204 };
    },
  });
}
