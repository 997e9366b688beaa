import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { DAY_MS, startRetentionStack, type RetentionStack } from './retention-kit.js';
import { cachedTexts, http } from './stack.js';

/**
 * An expired read position must stop counting at once: the receipts projection dropped the cached
 * chat lists of a ReadPositionUpdated's reader, but not of the readers a ReadPositionsExpired
 * deleted, so a cached list kept the unread count of a position that no longer exists until
 * REDIS_CHATS_TTL (30 minutes by default).
 */
describe('retention: an expired read position leaves the cached chat lists', () => {
  let rs: RetentionStack;
  let redis: Redis;

  beforeAll(async () => {
    // Only read receipts expire: the messages stay (a year), so the unread count has something to count.
    rs = await startRetentionStack('retention-receipts', { READ_RECEIPT_RETENTION_DAYS: '30' });
    redis = new Redis(rs.env.redisUrl);
  });
  afterAll(async () => {
    await redis?.quit();
    await rs?.stop();
  });

  it('counts every message as unread again once the position expired, also where the list was cached', async () => {
    const { services: stack, ann, bob, env } = rs;
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id;
    const send = async (clientMsgId: string) => (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId, body: clientMsgId } })).body as { id: string };
    await send('one');
    const two = await send('two');
    expect((await http(stack, 'POST', `/api/v1/chats/${chatId}/read`, { token: bob.accessToken, body: { messageId: two.id } })).status).toBe(204);
    await eventually(async () => (await rs.count('SELECT count(*) AS n FROM messages.read_positions')) === 1 || undefined);
    const unread = async () => ((await http(stack, 'GET', '/api/v1/chats', { token: bob.accessToken })).body.items as { id: string; unreadCount: number }[]).find((c) => c.id === chatId)?.unreadCount;
    expect(await unread()).toBe(0);
    // Bob's list is cached now, with the count from his position.
    const listKey = `${env.namespace}:chats:${bob.id}`;
    expect((await cachedTexts(redis, env.namespace)).has(listKey)).toBe(true);

    await new Promise((r) => setTimeout(r, 50));
    const cutoff = new Date();
    const pass = await rs.passAt(new Date(cutoff.getTime() + 30 * DAY_MS));
    expect(pass.exitCode).toBe(0);
    expect(pass.report?.rows.readReceipts).toBe(1);
    expect(await rs.count('SELECT count(*) AS n FROM messages.read_positions')).toBe(0);
    // The list is dropped after the projection's commit (and ack, which the pass waited for).
    expect(await eventually(async () => ((await unread()) === 2 ? 2 : undefined), 5_000, 'both messages unread for bob')).toBe(2);
  });
});
