/** Redis keys of the users service (the namespace prefix is added by the cache client). */
export const userCacheKey = (userId: string) => `user:${userId}`;
