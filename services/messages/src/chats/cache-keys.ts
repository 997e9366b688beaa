/** Redis keys of the messages service (the namespace prefix is added by the cache client). */
export const chatListKey = (userId: string) => `chats:${userId}`;
