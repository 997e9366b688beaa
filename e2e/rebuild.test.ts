import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { rebuildMessages } from '../services/messages/src/rebuild.js';
import { rebuildUsers } from '../services/users/src/rebuild.js';
import { startMessagesService } from '../services/messages/src/service.js';
import { startUsersService } from '../services/users/src/service.js';
import { startGatewayService } from '../services/gateway/src/service.js';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { http, register, TestSocket } from './stack.js';

const root = path.resolve(import.meta.dirname, '..');

/** Every projection row, in a stable order, for comparing before and after a rebuild. */
async function snapshot(db: pg.Client) {
  const q = async (sql: string) => (await db.query(sql)).rows;
  return {
    users: await q('SELECT id, username, email, display_name, password_hash, created_at, stream_seq FROM users.users ORDER BY id'),
    chats: await q('SELECT * FROM messages.chats ORDER BY id'),
    members: await q('SELECT * FROM messages.chat_members ORDER BY chat_id, user_id'),
    direct: await q('SELECT * FROM messages.direct_chats ORDER BY chat_id'),
    messages: await q('SELECT * FROM messages.messages ORDER BY chat_id, seq'),
    sessions: await q('SELECT id FROM users.sessions ORDER BY id'),
    audit: await q('SELECT * FROM users.audit_log ORDER BY id'),
  };
}

describe('npm run rebuild: projections are rebuilt from the streams', () => {
  let env: TestEnv;
  let db: pg.Client;

  beforeAll(async () => {
    env = await createTestEnv();
    db = new pg.Client({ connectionString: env.databaseUrl });
  });
  afterAll(async () => {
    await db?.end();
    await env?.cleanup();
  });

  it('replays into rows equal to the live ones, and refuses while the service runs', async () => {
    const vars = { ...env.env, PORT: '0', METRICS_PORT: '0' };
    const users = await startUsersService(vars);
    const messages = await startMessagesService(vars);
    const gateway = await startGatewayService(vars);
    const stack = { baseUrl: `http://127.0.0.1:${gateway.port}` };
    const [a, b, c] = [await register(stack), await register(stack), await register(stack)];
    const direct = await http(stack, 'POST', '/api/v1/chats', { token: a.accessToken, body: { type: 'direct', userId: b.id } });
    const group = await http(stack, 'POST', '/api/v1/chats', { token: c.accessToken, body: { type: 'group', title: 'three', memberIds: [a.id, b.id] } });
    const socket = await TestSocket.open(`ws://127.0.0.1:${gateway.port}/ws`, a.accessToken);
    for (let i = 0; i < 30; i++) {
      socket.send({ op: 'send', chatId: i % 2 ? direct.body.id : group.body.id, clientMsgId: `m${i}`, body: `message ${i} ✓`, replyTo: null });
    }
    for (let i = 0; i < 30; i++) await socket.next((f) => f.op === 'ack');
    socket.close();
    await db.connect();
    await eventually(async () => ((await db.query('SELECT count(*)::int AS n FROM messages.messages')).rows[0].n === 30 ? true : undefined));

    // While the service is running, its projector holds the leadership lock: rebuild must refuse.
    await expect(rebuildMessages(vars)).rejects.toThrow(/stop that service/);

    const before = await snapshot(db);
    await gateway.stop();
    await messages.stop();
    await users.stop();

    // Three registrations: three UserRegistered events, and three audit entries.
    expect(await rebuildUsers(vars)).toBe(6);
    expect(await rebuildMessages(vars)).toBe(2 + 30);
    const after = await snapshot(db);
    expect(after).toEqual(before);
    expect(after.messages).toHaveLength(30);
  });

  it('runs as a project command', async () => {
    const { stdout } = await promisify(execFile)('node', [path.join(root, 'scripts/rebuild.mjs'), 'messages'], {
      cwd: root,
      env: { ...process.env, ...env.env },
    });
    expect(stdout).toMatch(/rebuilt messages: 32 events replayed/);
    const count = (await db.query('SELECT count(*)::int AS n FROM messages.messages')).rows[0].n;
    expect(count).toBe(30);
  });
});
