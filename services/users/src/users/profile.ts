import { publishEvent, waitForCheckpoint, type Bus } from '@parley/bus';
import type { Cache } from '@parley/cache';
import { buildMeta, newId, subjects, type ProfileUpdated, type UserView } from '@parley/contracts';
import { InvalidRequest, Unavailable } from '@parley/http';
import type { Pool } from '@parley/pg';
import { meCacheKey, userCacheKey } from './cache-keys.js';
import { CHECKPOINT_TABLE, USERS_PROJECTOR } from './projection.js';
import { findUserById, findUsersByIds, toUserView } from './queries.js';

export interface ProfileDeps {
  bus: Bus;
  pool: Pool;
  cache: Cache;
  namespace: string;
  userTtlSeconds: number;
}

/** A public profile through the Redis cache (user:<id>, deleted by the projection on every user event). */
export async function publicProfile(deps: ProfileDeps, id: string): Promise<UserView | null> {
  const cached = await deps.cache.getJson<UserView>(userCacheKey(id));
  if (cached) return cached;
  const row = await findUserById(deps.pool, id);
  if (!row) return null;
  const view = toUserView(row);
  await deps.cache.setJson(userCacheKey(id), view, deps.userTtlSeconds);
  return view;
}

/** Several public profiles: cache hits first, one query for the misses. Order follows `ids`. */
export async function publicProfiles(deps: ProfileDeps, ids: string[]): Promise<UserView[]> {
  const cached = await Promise.all(ids.map((id) => deps.cache.getJson<UserView>(userCacheKey(id))));
  const missing = ids.filter((_, i) => !cached[i]);
  const fetched = new Map((await findUsersByIds(deps.pool, missing)).map((row) => [row.id, toUserView(row)]));
  await Promise.all([...fetched.values()].map((view) => deps.cache.setJson(userCacheKey(view.id), view, deps.userTtlSeconds)));
  return ids.flatMap((id, i) => {
    const view = cached[i] ?? fetched.get(id);
    return view ? [view] : [];
  });
}

/** The caller's own profile, with e-mail, cached as me:<id>. */
export async function ownProfile(deps: ProfileDeps, id: string): Promise<UserView | null> {
  const cached = await deps.cache.getJson<UserView>(meCacheKey(id));
  if (cached) return cached;
  const row = await findUserById(deps.pool, id);
  if (!row) return null;
  const view = toUserView(row, true);
  await deps.cache.setJson(meCacheKey(id), view, deps.userTtlSeconds);
  return view;
}

export interface ProfileChange {
  displayName?: string | undefined;
  bio?: string | undefined;
  avatarUrl?: string | null | undefined;
}

/** Publishes the fields that change and waits until the projection (and so every replica) has them. */
export async function updateProfile(deps: ProfileDeps, userId: string, change: ProfileChange, correlationId: string): Promise<void> {
  const data: ProfileUpdated['data'] = { userId };
  if (change.displayName !== undefined) {
    const name = change.displayName.trim();
    if (name.length === 0) throw new InvalidRequest('displayName must not be blank');
    data.displayName = name;
  }
  if (change.bio !== undefined) data.bio = change.bio;
  if (change.avatarUrl !== undefined) {
    if (change.avatarUrl !== null && !isWebUrl(change.avatarUrl)) throw new InvalidRequest('avatarUrl must be an http(s) URL');
    data.avatarUrl = change.avatarUrl;
  }
  const event: ProfileUpdated = {
    type: 'ProfileUpdated',
    version: 1,
    data,
    meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: userId, correlationId }),
  };
  const ack = await publishEvent(deps.bus.js, subjects.user(deps.namespace, userId), event, { msgId: `profile:${event.meta.eventId}` });
  if (!(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, USERS_PROJECTOR, ack.seq))) {
    throw new Unavailable('The change is stored but not yet visible; reload shortly');
  }
}

function isWebUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}
