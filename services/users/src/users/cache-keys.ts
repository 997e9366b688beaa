/** Redis keys of the users service (the namespace prefix is added by the cache client). */
export const userCacheKey = (userId: string) => `user:${userId}`;
export const meCacheKey = (userId: string) => `me:${userId}`;
export const contactsCacheKey = (userId: string) => `contacts:${userId}`;
export const sessionCacheKey = (sessionId: string) => `session:${sessionId}`;
