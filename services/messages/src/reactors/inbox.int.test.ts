import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, type Bus } from '@parley/bus';
import { newId, subjects } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { createPool, migrate, type Pool } from '@parley/pg';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { inboxNoticeReactor } from './inbox.js';

const log = createLogger({ service: 'test', level: 'silent' });

/**
 * The reliable path of "start following this chat": a notice the chats projection queued is
 * published by the reactor (to every added user's inbox subject) and leaves the queue only then,
 * whether or not the command's own notice after its append got out.
 */
describe('inbox notice reactor', () => {
  let env: TestEnv;
  let bus: Bus;
  let pool: Pool;
  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'inbox-test', log });
    pool = createPool({ connectionString: env.databaseUrl });
    await migrate(pool, 'messages', fileURLToPath(new URL('../../migrations', import.meta.url)));
  });
  afterAll(async () => {
    await pool?.end();
    await bus?.nc.close();
    await env?.cleanup();
  });

  it('publishes each queued notice to every added user, then empties the queue', async () => {
    const [chatId, ann, bob] = [newId(), newId(), newId()];
    const received: { subject: string; data: unknown }[] = [];
    const sub = bus.nc.subscribe(subjects.inbox(env.namespace, '*'), { callback: (_err, msg) => void received.push({ subject: msg.subject, data: msg.json() }) });
    await bus.nc.flush();
    await pool.query('INSERT INTO messages.inbox_notices (stream_seq, chat_id, seq, user_ids, queued_at) VALUES (7, $1, 1, $2, now()), (9, $1, 3, $3, now())', [chatId, [ann, bob], [bob]]);

    expect(await inboxNoticeReactor({ pool, bus, namespace: env.namespace, log }).drain()).toBe(2);
    await bus.nc.flush();
    const deadline = Date.now() + 5_000;
    while (received.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    sub.unsubscribe();
    expect(received).toEqual([
      { subject: subjects.inbox(env.namespace, ann), data: { chatId, seq: 1, userIds: [ann, bob] } },
      { subject: subjects.inbox(env.namespace, bob), data: { chatId, seq: 1, userIds: [ann, bob] } },
      { subject: subjects.inbox(env.namespace, bob), data: { chatId, seq: 3, userIds: [bob] } },
    ]);
    expect((await pool.query('SELECT count(*)::int AS n FROM messages.inbox_notices')).rows[0].n).toBe(0);
  });
});
