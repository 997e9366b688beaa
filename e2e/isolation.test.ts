import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, TestSocket, type Account, type Stack } from './stack.js';

/**
 * Promise 4 (docs/architecture.md#promises): nobody reads or writes a chat they are not a member of, by any route or
 * frame. Every route that names a chat, message, poll or attachment is tried by an outsider, who
 * must get exactly what a non-existent id gets (404 / not_found), and nothing may change.
 */
describe('isolation: an outsider reaches nothing of a chat, by any route or frame', () => {
  let stack: Stack;
  let owner: Account;
  let outsider: Account;
  let chatId: string;
  let messageId: string;
  let pollId: string;
  let attachmentId: string;

  beforeAll(async () => {
    stack = await startStack();
    [owner, outsider] = [await register(stack, 'iso_owner'), await register(stack, 'iso_out')];
    const member = await register(stack, 'iso_member');
    chatId = (await http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'group', title: 'private', memberIds: [member.id] } })).body.id;
    const form = new FormData();
    form.append('file', new Blob([Buffer.from('secret file')], { type: 'text/plain' }), 'secret.txt');
    attachmentId = ((await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${owner.accessToken}` }, body: form })).json()) as any).id;
    messageId = (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: owner.accessToken, body: { clientMsgId: 'm1', body: 'private words', attachmentIds: [attachmentId] } })).body.id;
    pollId = (await http(stack, 'POST', `/api/v1/chats/${chatId}/polls`, { token: owner.accessToken, body: { question: 'private?', options: ['yes', 'no'] } })).body.poll.id;
    await eventually(async () => ((await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: owner.accessToken })).body.items.length === 2 ? true : undefined));
  });
  afterAll(async () => stack?.stop());

  it('answers every HTTP route as if the chat did not exist', async () => {
    const ghost = '01900000-0000-7000-8000-000000000000';
    const routes: [string, (id: { chat: string; message: string; poll: string; attachment: string }) => string, unknown?][] = [
      ['GET', (i) => `/api/v1/chats/${i.chat}`],
      ['PATCH', (i) => `/api/v1/chats/${i.chat}`, { title: 'mine' }],
      ['POST', (i) => `/api/v1/chats/${i.chat}/members`, { userId: outsider.id }],
      ['DELETE', (i) => `/api/v1/chats/${i.chat}/members/${owner.id}`],
      ['POST', (i) => `/api/v1/chats/${i.chat}/read`, { messageId }],
      ['GET', (i) => `/api/v1/chats/${i.chat}/messages`],
      ['POST', (i) => `/api/v1/chats/${i.chat}/messages`, { clientMsgId: 'x', body: 'hi' }],
      ['POST', (i) => `/api/v1/chats/${i.chat}/polls`, { question: 'q?', options: ['a', 'b'] }],
      ['PATCH', (i) => `/api/v1/messages/${i.message}`, { body: 'edited' }],
      ['DELETE', (i) => `/api/v1/messages/${i.message}`],
      ['POST', (i) => `/api/v1/messages/${i.message}/reactions`, { emoji: '👀' }],
      ['DELETE', (i) => `/api/v1/messages/${i.message}/reactions/x`],
      ['POST', (i) => `/api/v1/polls/${i.poll}/votes`, { optionIds: ['1'] }],
      ['POST', (i) => `/api/v1/polls/${i.poll}/close`],
      ['GET', (i) => `/api/v1/attachments/${i.attachment}`],
      ['GET', (i) => `/api/v1/search?q=private&chatId=${i.chat}`],
    ];
    for (const [method, path, body] of routes) {
      const real = await http(stack, method, path({ chat: chatId, message: messageId, poll: pollId, attachment: attachmentId }), { token: outsider.accessToken, body });
      const none = await http(stack, method, path({ chat: ghost, message: ghost, poll: ghost, attachment: ghost }), { token: outsider.accessToken, body });
      expect(real.status, `${method} ${path({ chat: 'C', message: 'M', poll: 'P', attachment: 'A' })}`).toBe(404);
      expect(real.body).toEqual(none.body);
    }
    // Search without a chat filter finds nothing of it either, and the chat list does not show it.
    expect((await http(stack, 'GET', '/api/v1/search?q=private', { token: outsider.accessToken })).body.items).toEqual([]);
    expect((await http(stack, 'GET', '/api/v1/chats', { token: outsider.accessToken })).body.items).toEqual([]);
    // Nothing changed.
    const chat = (await http(stack, 'GET', `/api/v1/chats/${chatId}`, { token: owner.accessToken })).body;
    expect(chat.title).toBe('private');
    expect(chat.members.map((m: { userId: string }) => m.userId)).not.toContain(outsider.id);
    const items = (await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: owner.accessToken })).body.items;
    expect(items).toHaveLength(2);
    expect(items[1]).toMatchObject({ body: 'private words', editedAt: null, deletedAt: null, reactions: [] });
  });

  it('answers every WebSocket frame as if the chat did not exist, and delivers nothing', async () => {
    const s = await TestSocket.open(stack.wsUrl, outsider.accessToken);
    s.send({ op: 'send', chatId, clientMsgId: 'ws1', body: 'let me in' });
    expect(await s.next((f) => f.op === 'error')).toMatchObject({ code: 'not_found' });
    s.send({ op: 'typing', chatId });
    expect(await s.next((f) => f.op === 'error')).toMatchObject({ code: 'not_found' });
    s.send({ op: 'read', chatId, messageId });
    expect(await s.next((f) => f.op === 'error')).toMatchObject({ code: 'not_found' });
    s.send({ op: 'resume', cursors: { [chatId]: 0 } });
    await s.next((f) => f.op === 'resumed');
    s.send({ op: 'send', chatId, clientMsgId: 'ws2', body: 'reply', replyTo: messageId });
    expect(await s.next((f) => f.op === 'error' && f.ref === 'ws2')).toMatchObject({ code: 'not_found' });
    await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: owner.accessToken, body: { clientMsgId: 'm2', body: 'more private words' } });
    await new Promise((r) => setTimeout(r, 300));
    expect(s.frames.filter((f) => f.op === 'event' || f.op === 'typing')).toEqual([]);
    s.close();
  });
});
