import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, TestSocket, type Stack } from './stack.js';

/**
 * Promise 1 (docs/architecture.md#promises), the Postgres part: with the database unreachable, sends are still accepted
 * (the ack needs only JetStream) and nothing acknowledged is lost: the projection catches up when
 * Postgres returns. The outage is this test's own database refusing and dropping connections.
 */
describe('Postgres outage', () => {
  let stack: Stack;
  let admin: pg.Client;
  let dbName: string;

  beforeAll(async () => {
    stack = await startStack({ PROJECTOR_ACK_WAIT_MS: '1000' });
    dbName = new URL(stack.env.databaseUrl).pathname.slice(1);
    const adminUrl = new URL(stack.env.databaseUrl);
    adminUrl.pathname = '/postgres';
    admin = new pg.Client({ connectionString: adminUrl.toString() });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`).catch(() => {});
    await admin?.end();
    await stack?.stop();
  });

  it('keeps acking sends while the database is down, and projects every one of them when it returns', async () => {
    const [a, b] = [await register(stack, 'out_a'), await register(stack, 'out_b')];
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: a.accessToken, body: { type: 'direct', userId: b.id } })).body.id;
    const socket = await TestSocket.open(stack.wsUrl, a.accessToken);
    const peer = await TestSocket.open(stack.wsUrl, b.accessToken);
    await Promise.all([socket.sync(), peer.sync()]);

    // Down: no new connections, and every existing one is cut.
    await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS false`);
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [dbName]);

    const acks = [];
    for (let i = 0; i < 20; i++) {
      socket.send({ op: 'send', chatId, clientMsgId: `down-${i}`, body: `sent during the outage ${i}` });
      acks.push(await socket.next((f) => f.op === 'ack' && f.clientMsgId === `down-${i}`, 10_000));
    }
    // Live delivery does not need Postgres either.
    for (let i = 0; i < 20; i++) await peer.next((f) => f.type === 'message.created' && f.data.body === `sent during the outage ${i}`);
    // While it is down, history cannot be served: a clean 503, not a hang or a 500.
    const during = await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: b.accessToken });
    expect(during.status).toBe(503);
    expect(during.body.error.code).toBe('unavailable');

    await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`);
    const history = await eventually(async () => {
      const page = await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: b.accessToken });
      return page.status === 200 && page.body.items.length === 20 ? page : undefined;
    }, 30_000, 'the projection to catch up');
    expect(history.body.items.map((m: { id: string }) => m.id).sort()).toEqual(acks.map((ack) => ack.messageId).sort());
    expect(history.body.items.map((m: { seq: number }) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 21 - i));
    socket.close();
    peer.close();
  }, 60_000);
});
