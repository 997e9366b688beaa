import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCache, type Cache } from '@parley/cache';
import { newId, type ChatEvent } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { migrate, type Pool } from '@parley/pg';
import { eventually, projectionDatabase, serverUrls } from '@parley/testing';
import { chatListKey } from './cache-keys.js';
import { dropChatLists } from './projection.js';

const MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));
/** Past V8's limit on arguments spread into one call (about 120,000 here): the keys went into one del(...keys). */
const MEMBERS = 150_000;

let pool: Pool;
let cleanup: () => Promise<void>;
let cache: Cache;
let raw: Redis;
const prefix = `t${randomBytes(5).toString('hex')}`;

beforeAll(async () => {
  ({ pool, cleanup } = await projectionDatabase((p) => migrate(p, 'messages', MIGRATIONS)));
  const url = serverUrls().redisUrl;
  cache = createCache({ url, prefix, log: createLogger({ service: 'test', level: 'silent' }), secret: randomBytes(32) });
  raw = new Redis(url, { maxRetriesPerRequest: 1 });
  await eventually(async () => ((await cache.ping()) ? true : undefined));
});
afterAll(async () => {
  await cache?.close();
  await raw?.quit();
  await cleanup?.();
});

describe('dropChatLists', () => {
  it("drops the cached chat list of every member of a chat with more members than one call's arguments can carry", async () => {
    const [chatId, owner] = [newId(), newId()];
    await pool.query(`INSERT INTO messages.chats (id, type, title, created_by, created_at, last_seq, last_activity_at, stream_seq) VALUES ($1, 'group', 't', $2, now(), 1, now(), 1)`, [chatId, owner]);
    const { rows } = await pool.query<{ user_id: string }>(
      `INSERT INTO messages.chat_members (chat_id, user_id, role, joined_seq) SELECT $1, gen_random_uuid(), 'member', 1 FROM generate_series(1, $2) RETURNING user_id`,
      [chatId, MEMBERS],
    );
    // A cached list for the first and the last member, read back through the raw client.
    const watched = [rows[0]!.user_id, rows.at(-1)!.user_id];
    await raw.mset(...watched.flatMap((id) => [`${prefix}:${chatListKey(id)}`, 'cached']));
    const deleted = { type: 'MessageDeleted', chatId, seq: 2, data: {} } as unknown as ChatEvent;
    await dropChatLists({ cache, pool }, [deleted]);
    expect(await raw.exists(...watched.map((id) => `${prefix}:${chatListKey(id)}`))).toBe(0);
  });
});
