import type { UserEvent } from '@parley/contracts';

/** Redis keys of the users service (the namespace prefix is added by the cache client). */
export const userCacheKey = (userId: string) => `user:${userId}`;
export const meCacheKey = (userId: string) => `me:${userId}`;
export const contactsCacheKey = (userId: string) => `contacts:${userId}`;
export const sessionCacheKey = (sessionId: string) => `session:${sessionId}`;

/**
 * The cache entries one users event makes stale. Contact lists are cached as ids only and
 * resolved through user:<id>, so a contact's profile change is covered by that one user key.
 */
export function cacheKeysFor(event: Pick<UserEvent, 'type' | 'data'>): string[] {
  const keys = [userCacheKey(event.data.userId), meCacheKey(event.data.userId)];
  if (event.type === 'ContactAdded' || event.type === 'ContactRemoved' || event.type === 'UserErased') keys.push(contactsCacheKey(event.data.userId));
  return keys;
}
