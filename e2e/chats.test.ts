import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, TestSocket, type Account, type Stack } from './stack.js';

describe('chats and messages over HTTP', () => {
  let stack: Stack;
  let ann: Account;
  let ben: Account;
  let cat: Account;
  let outsider: Account;

  beforeAll(async () => {
    stack = await startStack({ MESSAGE_MAX_CHARS: '20' });
    [ann, ben, cat, outsider] = [await register(stack, 'ann'), await register(stack, 'ben'), await register(stack, 'cat'), await register(stack, 'out')];
  });
  afterAll(async () => stack?.stop());

  const post = (who: Account, path: string, body: unknown) => http(stack, 'POST', path, { token: who.accessToken, body });
  const get = (who: Account, path: string) => http(stack, 'GET', path, { token: who.accessToken });

  it('creates one direct chat per pair even when both sides ask at the same moment', async () => {
    const answers = await Promise.all([
      post(ann, '/api/v1/chats', { type: 'direct', userId: cat.id }),
      post(cat, '/api/v1/chats', { type: 'direct', userId: ann.id }),
      post(ann, '/api/v1/chats', { type: 'direct', userId: cat.id }),
    ]);
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 201]);
  });

  it('refuses a direct chat with oneself or with nobody', async () => {
    expect((await post(ann, '/api/v1/chats', { type: 'direct', userId: ann.id })).status).toBe(400);
    const ghost = await post(ann, '/api/v1/chats', { type: 'direct', userId: '01900000-0000-7000-8000-000000000000' });
    expect(ghost.status).toBe(404);
    expect((await post(ann, '/api/v1/chats', { type: 'direct', userId: 'bob' })).status).toBe(400);
    expect((await post(ann, '/api/v1/chats', { type: 'channel', userId: ben.id })).status).toBe(400);
  });

  it('creates a group with the creator as owner, visible to members only', async () => {
    const created = await post(ann, '/api/v1/chats', { type: 'group', title: 'Team', memberIds: [ben.id] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ type: 'group', title: 'Team', lastMessage: null, unreadCount: 0 });
    expect(created.body.members).toEqual([
      { userId: ann.id, role: 'owner' },
      { userId: ben.id, role: 'member' },
    ]);
    const id = created.body.id;
    expect((await get(ben, `/api/v1/chats/${id}`)).status).toBe(200);
    // Non-members get 404 on every route, exactly as for a chat that does not exist.
    const hidden = await get(outsider, `/api/v1/chats/${id}`);
    const missing = await get(outsider, '/api/v1/chats/01900000-0000-7000-8000-000000000000');
    expect(hidden.status).toBe(404);
    expect(hidden.body).toEqual(missing.body);
    expect((await get(outsider, `/api/v1/chats/${id}/messages`)).status).toBe(404);
    expect((await post(outsider, `/api/v1/chats/${id}/messages`, { clientMsgId: 'x', body: 'hi' })).status).toBe(404);
    const list = await get(outsider, '/api/v1/chats');
    expect(list.body.items.map((c: { id: string }) => c.id)).not.toContain(id);
  });

  it('sends over HTTP with clientMsgId idempotency, replies in the same chat only, and bounded bodies', async () => {
    const group = (await post(ann, '/api/v1/chats', { type: 'group', title: 'Replies', memberIds: [ben.id] })).body;
    const other = (await post(ann, '/api/v1/chats', { type: 'group', title: 'Elsewhere', memberIds: [] })).body;
    const first = await post(ben, `/api/v1/chats/${group.id}/messages`, { clientMsgId: 'h1', body: 'first' });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ chatId: group.id, senderId: ben.id, body: 'first', seq: 2, replyTo: null, reactions: [], attachments: [], poll: null });
    const again = await post(ben, `/api/v1/chats/${group.id}/messages`, { clientMsgId: 'h1', body: 'first' });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);

    const reply = await post(ann, `/api/v1/chats/${group.id}/messages`, { clientMsgId: 'h2', body: 'answer', replyTo: first.body.id });
    await eventually(async () => ((await get(ann, `/api/v1/chats/${group.id}/messages`)).body.items.length === 2 ? true : undefined));
    expect(reply.status).toBe(201);
    expect(reply.body.replyTo).toBe(first.body.id);
    const crossChat = await post(ann, `/api/v1/chats/${other.id}/messages`, { clientMsgId: 'h3', body: 'sneaky', replyTo: first.body.id });
    expect(crossChat.status).toBe(400);

    expect((await post(ann, `/api/v1/chats/${group.id}/messages`, { clientMsgId: 'h4', body: 'x'.repeat(21) })).status).toBe(400);
    // The limit counts characters, not UTF-16 units: 20 emoji fit.
    expect((await post(ann, `/api/v1/chats/${group.id}/messages`, { clientMsgId: 'h5', body: '😀'.repeat(20) })).status).toBe(201);
    expect((await post(ann, `/api/v1/chats/${group.id}/messages`, { clientMsgId: 'h6', body: '   ' })).status).toBe(400);
    expect((await post(ann, `/api/v1/chats/${group.id}/messages`, { clientMsgId: 'h7', body: 'hi', attachmentIds: ['nope'] })).status).toBe(400);
    expect((await post(ann, `/api/v1/chats/${group.id}/messages`, { body: 'no client id' })).status).toBe(400);
    const page = await eventually(async () => {
      const p = await get(ann, `/api/v1/chats/${group.id}/messages`);
      return p.body.items.length === 3 ? p : undefined;
    });
    expect(page.body.items.map((m: { seq: number }) => m.seq)).toEqual([4, 3, 2]);
  });

  it('pages history newest first with an opaque cursor, and validates paging input', async () => {
    const chat = (await post(ann, '/api/v1/chats', { type: 'group', title: 'Paging', memberIds: [cat.id] })).body;
    const socket = await TestSocket.open(stack.wsUrl, cat.accessToken);
    for (let i = 1; i <= 7; i++) socket.send({ op: 'send', chatId: chat.id, clientMsgId: `p${i}`, body: `n${i}` });
    for (let i = 1; i <= 7; i++) await socket.next((f) => f.op === 'ack');
    socket.close();
    await eventually(async () => ((await get(ann, `/api/v1/chats/${chat.id}/messages`)).body.items.length === 7 ? true : undefined));
    const bodies: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { body: { items: { body: string }[]; nextCursor: string | null } } = await get(ann, `/api/v1/chats/${chat.id}/messages?limit=3${cursor ? `&before=${cursor}` : ''}`);
      bodies.push(...page.body.items.map((m) => m.body));
      cursor = page.body.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    expect(bodies).toEqual(['n7', 'n6', 'n5', 'n4', 'n3', 'n2', 'n1']);
    for (const bad of ['limit=0', 'limit=201', 'limit=abc', 'before=garbage', 'unknown=1']) {
      const answer = await get(ann, `/api/v1/chats/${chat.id}/messages?${bad}`);
      expect(answer.status, bad).toBe(400);
      expect(answer.body.error.code).toBe('invalid_request');
    }
  });

  it('lists chats newest activity first with the last message', async () => {
    const quiet = (await post(ben, '/api/v1/chats', { type: 'group', title: 'Quiet', memberIds: [cat.id] })).body;
    const busy = (await post(ben, '/api/v1/chats', { type: 'group', title: 'Busy', memberIds: [cat.id] })).body;
    await post(cat, `/api/v1/chats/${quiet.id}/messages`, { clientMsgId: 'q1', body: 'older' });
    await new Promise((r) => setTimeout(r, 5));
    await post(cat, `/api/v1/chats/${busy.id}/messages`, { clientMsgId: 'b1', body: 'newest' });
    const list = await eventually(async () => {
      const l = await get(ben, '/api/v1/chats');
      return l.body.items[0]?.lastMessage?.body === 'newest' ? l : undefined;
    });
    const ids = list.body.items.map((c: { id: string }) => c.id);
    expect(ids.indexOf(busy.id)).toBeLessThan(ids.indexOf(quiet.id));
    expect(list.body.items[0]).toMatchObject({ id: busy.id, unreadCount: 1, lastMessage: { body: 'newest', senderId: cat.id } });
    const paged = await get(ben, '/api/v1/chats?limit=1');
    expect(paged.body.items).toHaveLength(1);
    const next = await get(ben, `/api/v1/chats?limit=1&before=${paged.body.nextCursor}`);
    expect(next.body.items[0].id).not.toBe(paged.body.items[0].id);
  });
});
