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
import { http, register } from './stack.js';

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
    reactions: await q('SELECT * FROM messages.reactions ORDER BY message_id, user_id, emoji'),
    polls: await q('SELECT * FROM messages.polls ORDER BY id'),
    votes: await q('SELECT * FROM messages.poll_votes ORDER BY poll_id, user_id, option_id'),
    reads: await q('SELECT * FROM messages.read_positions ORDER BY chat_id, user_id'),
    attachments: await q('SELECT * FROM messages.attachments ORDER BY id'),
    messageAttachments: await q('SELECT * FROM messages.message_attachments ORDER BY message_id, attachment_id'),
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
    // Sent over HTTP: this suite is about the rebuild; the WebSocket path has suites of its own.
    const acks: { messageId: string }[] = [];
    for (let i = 0; i < 30; i++) {
      const sent = await http(stack, 'POST', `/api/v1/chats/${i % 2 ? direct.body.id : group.body.id}/messages`, {
        token: a.accessToken,
        body: { clientMsgId: `m${i}`, body: `message ${i} ✓`, replyTo: null },
      });
      if (sent.status !== 201) throw new Error(`send ${i}: ${sent.status}`);
      acks.push({ messageId: sent.body.id });
    }
    // Every kind of chat event, so the rebuild has all of them to replay.
    const form = new FormData();
    form.append('file', new Blob([Buffer.from('%PDF-1.4 rebuild')]), 'r.pdf');
    const file = (await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${a.accessToken}` }, body: form })).json()) as any;
    const groupId = group.body.id;
    const withFile = await http(stack, 'POST', `/api/v1/chats/${groupId}/messages`, { token: a.accessToken, body: { clientMsgId: 'file', body: 'file', attachmentIds: [file.id] } });
    await http(stack, 'POST', `/api/v1/messages/${acks[0]!.messageId}/reactions`, { token: b.accessToken, body: { emoji: '👍' } });
    await http(stack, 'PATCH', `/api/v1/messages/${acks[2]!.messageId}`, { token: a.accessToken, body: { body: 'edited' } });
    await http(stack, 'DELETE', `/api/v1/messages/${acks[4]!.messageId}`, { token: a.accessToken });
    // Tombstones of an edited message and of a reply: a replay makes them from MessageDeleted
    // alone (the original and its edits are gone from the stream), so the live rows must not keep
    // reply_to or edited_at.
    await http(stack, 'PATCH', `/api/v1/messages/${acks[6]!.messageId}`, { token: a.accessToken, body: { body: 'edited, then deleted' } });
    await http(stack, 'DELETE', `/api/v1/messages/${acks[6]!.messageId}`, { token: a.accessToken });
    const reply = await http(stack, 'POST', `/api/v1/chats/${direct.body.id}/messages`, { token: b.accessToken, body: { clientMsgId: 'reply', body: 'a reply', replyTo: acks[1]!.messageId } });
    await http(stack, 'DELETE', `/api/v1/messages/${reply.body.id}`, { token: b.accessToken });
    // A chat whose newest message is deleted: its last activity stays that message's time.
    const direct2 = await http(stack, 'POST', `/api/v1/chats`, { token: b.accessToken, body: { type: 'direct', userId: c.id } });
    // Not a wait for an effect: the message must be later than the chat's creation (to the ms), or
    // falling back to the creation time would go unseen.
    await new Promise((r) => setTimeout(r, 20));
    const newest = await http(stack, 'POST', `/api/v1/chats/${direct2.body.id}/messages`, { token: b.accessToken, body: { clientMsgId: 'newest', body: 'gone soon' } });
    await http(stack, 'DELETE', `/api/v1/messages/${newest.body.id}`, { token: b.accessToken });
    const poll = await http(stack, 'POST', `/api/v1/chats/${groupId}/polls`, { token: c.accessToken, body: { question: 'q?', options: ['x', 'y'] } });
    await http(stack, 'POST', `/api/v1/polls/${poll.body.poll.id}/votes`, { token: b.accessToken, body: { optionIds: ['2'] } });
    await http(stack, 'POST', `/api/v1/chats/${groupId}/read`, { token: b.accessToken, body: { messageId: withFile.body.id } });
    await http(stack, 'PATCH', `/api/v1/chats/${groupId}`, { token: c.accessToken, body: { title: 'renamed' } });
    await http(stack, 'DELETE', `/api/v1/chats/${groupId}/members/${b.id}`, { token: c.accessToken });
    await db.connect();
    await eventually(async () => ((await db.query('SELECT count(*)::int AS n FROM messages.read_positions')).rows[0].n === 1 ? true : undefined));
    await eventually(async () => ((await db.query('SELECT count(*)::int AS n FROM messages.messages')).rows[0].n === 34 ? true : undefined));
    await eventually(async () => ((await db.query('SELECT count(*)::int AS n FROM messages.messages WHERE deleted_at IS NOT NULL')).rows[0].n === 4 ? true : undefined));

    // While the service is running, its projector holds the leadership lock: rebuild must refuse.
    await expect(rebuildMessages(vars)).rejects.toThrow(/stop that service/);

    const before = await snapshot(db);
    await gateway.stop();
    await messages.stop();
    await users.stop();

    // Three registrations: three UserRegistered events, and three audit entries.
    expect(await rebuildUsers(vars)).toBe(6);
    // 1 upload + 2 chat creations, 30 + 1 messages, reaction, edit, delete, poll, vote, rename,
    // member removal + 1 receipt, less the deleted message's original (gone from the stream: its
    // tombstone recreates the row).
    // Then the third chat's creation and three more deletions, less the original of m6 (one of the
    // 30, deleted with its edit; the reply and the newest message left nothing else).
    expect(await rebuildMessages(vars)).toBe(1 + 2 + 31 + 7 + 1 - 1 + 3);
    const after = await snapshot(db);
    expect(after).toEqual(before);
    expect(after.messages).toHaveLength(34);
    expect(after.reactions).toHaveLength(1);
    expect(after.votes).toHaveLength(1);
    expect(after.messageAttachments).toHaveLength(1);
  });

  it('runs as a project command', async () => {
    const { stdout } = await promisify(execFile)('node', [path.join(root, 'scripts/rebuild.mjs'), 'messages'], {
      cwd: root,
      env: { ...process.env, ...env.env },
    });
    expect(stdout).toMatch(/rebuilt messages: 44 events replayed/);
    const count = (await db.query('SELECT count(*)::int AS n FROM messages.messages')).rows[0].n;
    expect(count).toBe(34);
  });
});
