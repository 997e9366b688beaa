import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, TestSocket, type Account, type Stack } from '../stack.js';

const GHOST = '01900000-0000-7000-8000-000000000000';

async function upload(stack: Stack, token: string, name: string, text: string): Promise<string> {
  const form = new FormData();
  form.append('file', new Blob([Buffer.from(text)], { type: 'text/plain' }), name);
  const res = await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  return ((await res.json()) as { id: string }).id;
}

/**
 * Promise 4 for a REMOVED member (isolation.test.ts covers someone who never was one): once out
 * of a group, by removal or by leaving, a former member gets from every chat route and frame
 * exactly what a non-existent id gets, even for messages they wrote themselves, even on a socket
 * that was open across the removal; and receives nothing sent afterwards. Only a file they
 * uploaded stays theirs to download (api.md: "and its uploader").
 */
describe('IDOR: a removed member reaches nothing of the chat any more', () => {
  let stack: Stack;
  let owner: Account;
  let removed: Account;
  let leaver: Account;
  let chatId: string;
  let ownMessageId: string;
  let ownerMessageId: string;
  let pollId: string;
  let ownFile: string;
  let ownerFile: string;
  let heldSocket: TestSocket;

  beforeAll(async () => {
    stack = await startStack();
    [owner, removed, leaver] = [await register(stack, 'idor_owner'), await register(stack, 'idor_removed'), await register(stack, 'idor_leaver')];
    chatId = (await http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'group', title: 'team', memberIds: [removed.id, leaver.id] } })).body.id;
    ownFile = await upload(stack, removed.accessToken, 'mine.txt', 'my file');
    ownerFile = await upload(stack, owner.accessToken, 'owners.txt', 'owner file');
    ownMessageId = (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: removed.accessToken, body: { clientMsgId: 'r1', body: 'written before removal', attachmentIds: [ownFile] } })).body.id;
    ownerMessageId = (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: owner.accessToken, body: { clientMsgId: 'o1', body: 'owner words', attachmentIds: [ownerFile] } })).body.id;
    pollId = (await http(stack, 'POST', `/api/v1/chats/${chatId}/polls`, { token: owner.accessToken, body: { question: 'lunch?', options: ['yes', 'no'] } })).body.poll.id;
    // A reaction of theirs, which they must not be able to take back either.
    await http(stack, 'POST', `/api/v1/messages/${ownerMessageId}/reactions`, { token: removed.accessToken, body: { emoji: '👍' } });
    heldSocket = await TestSocket.open(stack.wsUrl, removed.accessToken);
    const leaverSocket = await TestSocket.open(stack.wsUrl, leaver.accessToken);
    expect((await http(stack, 'DELETE', `/api/v1/chats/${chatId}/members/${removed.id}`, { token: owner.accessToken })).status).toBe(204);
    expect((await http(stack, 'DELETE', `/api/v1/chats/${chatId}/members/${leaver.id}`, { token: leaver.accessToken })).status).toBe(204);
    // Both learn it live; from then on the chat is gone for them.
    await heldSocket.next((f) => f.op === 'event' && f.type === 'member.removed' && f.data.userId === removed.id);
    await leaverSocket.next((f) => f.op === 'event' && f.type === 'member.removed' && f.data.userId === leaver.id);
    leaverSocket.close();
  });
  afterAll(async () => {
    heldSocket?.close();
    await stack?.stop();
  });

  const routes: [string, (i: { chat: string; own: string; other: string; poll: string; file: string }) => string, unknown?][] = [
    ['GET', (i) => `/api/v1/chats/${i.chat}`],
    ['PATCH', (i) => `/api/v1/chats/${i.chat}`, { title: 'taken over' }],
    ['POST', (i) => `/api/v1/chats/${i.chat}/members`, { userId: GHOST }],
    ['DELETE', (i) => `/api/v1/chats/${i.chat}/members/${GHOST}`],
    ['POST', (i) => `/api/v1/chats/${i.chat}/read`, { messageId: GHOST }],
    ['GET', (i) => `/api/v1/chats/${i.chat}/reads`],
    ['GET', (i) => `/api/v1/chats/${i.chat}/messages`],
    ['POST', (i) => `/api/v1/chats/${i.chat}/messages`, { clientMsgId: 'after', body: 'still here?' }],
    ['POST', (i) => `/api/v1/chats/${i.chat}/polls`, { question: 'q?', options: ['a', 'b'] }],
    ['PATCH', (i) => `/api/v1/messages/${i.own}`, { body: 'rewritten after removal' }],
    ['DELETE', (i) => `/api/v1/messages/${i.own}`],
    ['PATCH', (i) => `/api/v1/messages/${i.other}`, { body: 'rewritten' }],
    ['DELETE', (i) => `/api/v1/messages/${i.other}`],
    ['POST', (i) => `/api/v1/messages/${i.other}/reactions`, { emoji: '👀' }],
    ['DELETE', (i) => `/api/v1/messages/${i.other}/reactions/${encodeURIComponent('👍')}`],
    ['POST', (i) => `/api/v1/polls/${i.poll}/votes`, { optionIds: ['1'] }],
    ['POST', (i) => `/api/v1/polls/${i.poll}/close`],
    ['GET', (i) => `/api/v1/attachments/${i.file}`],
    ['GET', (i) => `/api/v1/attachments/${i.file}/thumbnail`],
    ['GET', (i) => `/api/v1/search?q=owner&chatId=${i.chat}`],
  ];

  for (const who of ['removed', 'leaver'] as const) {
    it(`answers every HTTP route for the ${who === 'removed' ? 'removed member' : 'member who left'} as if the chat did not exist`, async () => {
      const token = (who === 'removed' ? removed : leaver).accessToken;
      for (const [method, path, body] of routes) {
        const real = await http(stack, method, path({ chat: chatId, own: ownMessageId, other: ownerMessageId, poll: pollId, file: ownerFile }), { token, body });
        const none = await http(stack, method, path({ chat: GHOST, own: GHOST, other: GHOST, poll: GHOST, file: GHOST }), { token, body });
        expect(real.status, `${method} ${path({ chat: 'C', own: 'OWN', other: 'M', poll: 'P', file: 'F' })}`).toBe(404);
        expect(real.body).toEqual(none.body);
      }
      expect((await http(stack, 'GET', '/api/v1/search?q=words', { token })).body.items).toEqual([]);
      expect((await http(stack, 'GET', '/api/v1/search?q=removal', { token })).body.items).toEqual([]);
      expect((await http(stack, 'GET', '/api/v1/chats', { token })).body.items).toEqual([]);
    });
  }

  it('still lets the uploader download their own file (api.md), and nobody else who left', async () => {
    expect((await fetch(`${stack.baseUrl}/api/v1/attachments/${ownFile}`, { headers: { authorization: `Bearer ${removed.accessToken}` } })).status).toBe(200);
    expect((await fetch(`${stack.baseUrl}/api/v1/attachments/${ownFile}`, { headers: { authorization: `Bearer ${leaver.accessToken}` } })).status).toBe(404);
  });

  it('answers every frame on a socket open across the removal, and on a new one, with not_found, and delivers nothing', async () => {
    const fresh = await TestSocket.open(stack.wsUrl, removed.accessToken);
    for (const s of [heldSocket, fresh]) {
      s.send({ op: 'send', chatId, clientMsgId: 'ws-after', body: 'let me back in' });
      expect(await s.next((f) => f.op === 'error' && f.ref === 'ws-after')).toMatchObject({ code: 'not_found' });
      s.send({ op: 'typing', chatId });
      expect(await s.next((f) => f.op === 'error')).toMatchObject({ code: 'not_found' });
      s.send({ op: 'read', chatId, messageId: ownerMessageId });
      expect(await s.next((f) => f.op === 'error')).toMatchObject({ code: 'not_found' });
      s.send({ op: 'resume', cursors: { [chatId]: 0 } });
      expect(await s.next((f) => f.op === 'error')).toMatchObject({ code: 'not_found', ref: chatId });
      await s.next((f) => f.op === 'resumed');
    }
    const watcher = await TestSocket.open(stack.wsUrl, owner.accessToken);
    await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: owner.accessToken, body: { clientMsgId: 'o2', body: 'after they left' } });
    await watcher.next((f) => f.op === 'event' && f.type === 'message.created' && f.data.body === 'after they left');
    watcher.send({ op: 'typing', chatId });
    await watcher.sync();
    await new Promise((r) => setTimeout(r, 300));
    for (const s of [heldSocket, fresh]) {
      await s.sync();
      expect(s.frames.filter((f) => (f.op === 'event' || f.op === 'typing') && f.chatId === chatId)).toEqual([]);
    }
    fresh.close();
    watcher.close();
  });

  it('changed nothing: title, members, messages, reactions and poll as the owner left them', async () => {
    const chat = (await http(stack, 'GET', `/api/v1/chats/${chatId}`, { token: owner.accessToken })).body;
    expect(chat.title).toBe('team');
    expect(chat.members.map((m: { userId: string }) => m.userId)).toEqual([owner.id]);
    const items = await eventually(async () => {
      const page = (await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: owner.accessToken })).body.items;
      return page.length === 4 ? page : undefined;
    });
    const byId = new Map(items.map((m: { id: string }) => [m.id, m]));
    expect(byId.get(ownMessageId)).toMatchObject({ body: 'written before removal', editedAt: null, deletedAt: null });
    expect(byId.get(ownerMessageId)).toMatchObject({ body: 'owner words', deletedAt: null, reactions: [{ emoji: '👍', count: 1, me: false }] });
    const poll = items.find((m: { poll: unknown }) => m.poll)!.poll;
    expect(poll).toMatchObject({ closed: false, options: [{ votes: 0 }, { votes: 0 }] });
  });
});
