import { buildMeta, newId, type ProfileUpdated, type UserView } from '@parley/contracts';
import { InvalidRequest, NotFound } from '@parley/http';
import { meCacheKey, userCacheKey } from './cache-keys.js';
import { projectedUpToDate, publishUserEvent, type PublishDeps } from './publish.js';
import { erasedUserView, findUserById, findUsersByIds, toUserView } from './queries.js';

export interface ProfileDeps extends PublishDeps {
  /** REDIS_USER_TTL: how long a cached profile may live (the projection deletes it on change). */
  userTtlSeconds: number;
}

/** A public profile through the Redis cache (user:<id>, deleted by the projection on every user event). */
export async function publicProfile(deps: ProfileDeps, id: string): Promise<UserView | null> {
  const cached = await deps.cache.lookup<UserView>(userCacheKey(id));
  if (cached.value) return cached.value;
  const row = await findUserById(deps.pool, id);
  const view = row ? toUserView(row) : await erasedUserView(deps.pool, id);
  if (!view) return null;
  await cached.fill(view, deps.userTtlSeconds);
  return view;
}

/** Several public profiles: cache hits first, one query for the misses. Order follows `ids`. */
export async function publicProfiles(deps: ProfileDeps, ids: string[]): Promise<UserView[]> {
  const cached = await deps.cache.lookupMany<UserView>(ids.map(userCacheKey));
  const missing = ids.filter((_, i) => !cached[i]!.value);
  const fetched = new Map<string, UserView>((await findUsersByIds(deps.pool, missing)).map((row) => [row.id, toUserView(row)]));
  for (const id of missing) {
    if (fetched.has(id)) continue;
    const erased = await erasedUserView(deps.pool, id);
    if (erased) fetched.set(id, erased);
  }
  await Promise.all(
    ids.map((id, i) => {
      const view = fetched.get(id);
      return view ? cached[i]!.fill(view, deps.userTtlSeconds) : undefined;
    }),
  );
  return ids.flatMap((id, i) => {
    const view = cached[i]!.value ?? fetched.get(id);
    return view ? [view] : [];
  });
}

/** The caller's own profile, with e-mail, cached as me:<id>. */
export async function ownProfile(deps: ProfileDeps, id: string): Promise<UserView | null> {
  const cached = await deps.cache.lookup<UserView>(meCacheKey(id));
  if (cached.value) return cached.value;
  const row = await findUserById(deps.pool, id);
  if (!row) return null;
  const view = toUserView(row, true);
  await cached.fill(view, deps.userTtlSeconds);
  return view;
}

export interface ProfileChange {
  displayName?: string | undefined;
  bio?: string | undefined;
  avatarUrl?: string | null | undefined;
}

/**
 * Applies a PATCH /users/me: validates what the schema cannot (blank names, URL schemes), publishes
 * ProfileUpdated with only the fields that differ from the stored profile, waits until the
 * projection has it, and returns the fresh profile (`own`, with e-mail) and, when something
 * changed, the public profile (`changed`, what GET /users/:id shows) for the live `profile` frame.
 * A PATCH that changes nothing publishes nothing: the stream keeps only real changes, and nobody is
 * told of activity that changed nothing.
 */
export async function updateProfile(
  deps: ProfileDeps,
  userId: string,
  change: ProfileChange,
  correlationId: string,
): Promise<{ own: UserView; changed: UserView | null }> {
  const name = change.displayName?.trim();
  if (name !== undefined && name.length === 0) throw new InvalidRequest('displayName must not be blank');
  if (typeof change.avatarUrl === 'string' && !isWebUrl(change.avatarUrl)) throw new InvalidRequest('avatarUrl must be an http(s) URL');

  // Compared with Postgres, not the cache: an entry could be stale, and a skipped change is lost;
  // and with every stored change of the user projected (projectedUpToDate says why).
  await projectedUpToDate(deps, userId);
  const current = await findUserById(deps.pool, userId);
  if (!current) throw new NotFound('No such user');
  const data: ProfileUpdated['data'] = { userId };
  if (name !== undefined && name !== current.display_name) data.displayName = name;
  if (change.bio !== undefined && change.bio !== current.bio) data.bio = change.bio;
  if (change.avatarUrl !== undefined && change.avatarUrl !== current.avatar_url) data.avatarUrl = change.avatarUrl;
  if (Object.keys(data).length === 1) return { own: toUserView(current, true), changed: null };

  const event: ProfileUpdated = {
    type: 'ProfileUpdated',
    version: 1,
    data,
    meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: userId, correlationId }),
  };
  await publishUserEvent(deps, event, 'profile');
  // Read-your-writes from Postgres; the next GET fills me:<id> again.
  const fresh = await findUserById(deps.pool, userId);
  if (!fresh) throw new NotFound('No such user');
  return { own: toUserView(fresh, true), changed: toUserView(fresh) };
}

function isWebUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}
