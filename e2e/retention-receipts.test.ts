import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { runCleanup } from '../services/retention/src/cli.js';
import { cachedTexts, http, register, startServices, type Account, type Services } from './stack.js';

const DAY_MS = 86_400_000;

/**
 * An expired read position must stop counting at once: the receipts projection dropped the cached
 * chat lists of a ReadPositionUpdated's reader, but not of the readers a ReadPositionsExpired
 * deleted, so a cached list kept the unread count of a position that no longer exists until
 * REDIS_CHATS_TTL (30 minutes by default).
 */
describe('retention: an expired read position leaves the cached chat lists', () => {
  let env: TestEnv;
  let vars: Record<string, string>;
  let stack: Services;
  let db: pg.Client;
  let redis: Redis;
  let ann: Account;
  let bob: Account;

  beforeAll(async () => {
    env = await createTestEnv();
    // Only read receipts expire: the messages stay (a year), so the unread count has something to count.
    vars = { ...env.env, PORT: '0', METRICS_PORT: '0', PROJECTOR_ACK_WAIT_MS: '2000', ATTACHMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'parley-retention-receipts-')), MAIL_DIR: mkdtempSync(path.join(tmpdir(), 'parley-receipts-mail-')), READ_RECEIPT_RETENTION_DAYS: '30' };
    stack = await startServices(vars);
    db = new pg.Client({ connectionString: env.databaseUrl });
    await db.connect();
    redis = new Redis(env.redisUrl);
    [ann, bob] = [await register(stack), await register(stack)];
  });
  afterAll(async () => {
    await redis?.quit();
    await db?.end();
    await stack?.stop().catch(() => {});
    await env?.cleanup();
  });

  it('counts every message as unread again once the position expired, also where the list was cached', async () => {
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id;
    const send = async (clientMsgId: string) => (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId, body: clientMsgId } })).body as { id: string };
    await send('one');
    const two = await send('two');
    expect((await http(stack, 'POST', `/api/v1/chats/${chatId}/read`, { token: bob.accessToken, body: { messageId: two.id } })).status).toBe(204);
    await eventually(async () => Number((await db.query('SELECT count(*) AS n FROM messages.read_positions')).rows[0].n) === 1 || undefined);
    const unread = async () => ((await http(stack, 'GET', '/api/v1/chats', { token: bob.accessToken })).body.items as { id: string; unreadCount: number }[]).find((c) => c.id === chatId)?.unreadCount;
    expect(await unread()).toBe(0);
    // Bob's list is cached now, with the count from his position.
    const listKey = `${env.namespace}:chats:${bob.id}`;
    expect((await cachedTexts(redis, env.namespace)).has(listKey)).toBe(true);

    await new Promise((r) => setTimeout(r, 50));
    const cutoff = new Date();
    const pass = await runCleanup(['--now', new Date(cutoff.getTime() + 30 * DAY_MS).toISOString()], vars, () => {});
    expect(pass.exitCode).toBe(0);
    expect(pass.report?.rows.readReceipts).toBe(1);
    expect(Number((await db.query('SELECT count(*) AS n FROM messages.read_positions')).rows[0].n)).toBe(0);
    // The list is dropped after the projection's commit (and ack, which the pass waited for).
    expect(await eventually(async () => ((await unread()) === 2 ? 2 : undefined), 5_000, 'both messages unread for bob')).toBe(2);
  });
});
