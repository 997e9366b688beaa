import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, type Account, type Stack } from '../stack.js';

/**
 * Issue 23, finding 9: anyone who reached Redis read cached profiles (e-mail addresses among them)
 * and planted a profile or a chat-list title that the API then served. Values are now sealed with
 * CACHE_KEY (AES-256-GCM, bound to their key name and TTL): Redis holds nothing readable, and what
 * the services did not seal is a miss, answered from PostgreSQL.
 */
describe('the cache is not a way in', () => {
  let stack: Stack;
  let redis: Redis;
  let ann: Account;
  let bob: Account;
  let chatId: string;
  const key = (name: string) => `${stack.env.namespace}:${name}`;

  beforeAll(async () => {
    stack = await startStack();
    redis = new Redis(stack.env.redisUrl);
    ann = await register(stack);
    bob = await register(stack);
    await http(stack, 'PATCH', '/api/v1/users/me', { token: ann.accessToken, body: { displayName: 'Ann Original' } });
    const chat = await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'group', title: 'Board Room', memberIds: [bob.id] } });
    expect(chat.status).toBe(201);
    chatId = chat.body.id;
  });
  afterAll(async () => {
    redis?.disconnect();
    await stack?.stop();
  });

  /** Reads until the service has filled the key (the fill follows the answer). */
  async function cachedAfter(read: () => Promise<unknown>, name: string): Promise<string> {
    return eventually(async () => {
      await read();
      return (await redis.get(key(name))) ?? undefined;
    }, 10_000, `${name} to be cached`);
  }

  it('holds no readable personal data: e-mail, username, display name, chat title', async () => {
    const me = await cachedAfter(() => http(stack, 'GET', '/api/v1/users/me', { token: ann.accessToken }), `me:${ann.id}`);
    const profile = await cachedAfter(() => http(stack, 'GET', `/api/v1/users/${ann.id}`, { token: bob.accessToken }), `user:${ann.id}`);
    const chats = await cachedAfter(() => http(stack, 'GET', '/api/v1/chats', { token: bob.accessToken }), `chats:${bob.id}`);
    for (const stored of [me, profile, chats]) {
      for (const secret of [`${ann.username}@example.test`, ann.username, 'Ann Original', 'Board Room']) expect(stored).not.toContain(secret);
    }
  });

  it('serves PostgreSQL, not a planted profile, chat list or a value moved from another key', async () => {
    const planted = { id: ann.id, username: ann.username, displayName: 'Planted By Attacker', avatarUrl: null };
    await redis.set(key(`user:${ann.id}`), JSON.stringify(planted), 'EX', 600);
    const profile = await http(stack, 'GET', `/api/v1/users/${ann.id}`, { token: bob.accessToken });
    expect(profile.status).toBe(200);
    expect(profile.body.displayName).toBe('Ann Original');

    await redis.set(key(`chats:${bob.id}`), JSON.stringify({ items: [{ id: chatId, type: 'group', title: 'Send your password here' }], nextCursor: null }), 'EX', 600);
    const list = await http(stack, 'GET', '/api/v1/chats', { token: bob.accessToken });
    expect(list.body.items.find((c: { id: string }) => c.id === chatId).title).toBe('Board Room');

    // Ann's genuine sealed profile, copied under Bob's key, does not open there.
    const anns = await cachedAfter(() => http(stack, 'GET', `/api/v1/users/${ann.id}`, { token: bob.accessToken }), `user:${ann.id}`);
    await redis.set(key(`user:${bob.id}`), anns, 'EX', 600);
    const bobs = await http(stack, 'GET', `/api/v1/users/${bob.id}`, { token: ann.accessToken });
    expect(bobs.body.id).toBe(bob.id);
    expect(bobs.body.username).toBe(bob.username);
  });
});
