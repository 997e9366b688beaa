import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdLock } from './pg-lock.js';
import { eventually } from '@parley/testing';
import { http, register, startStack, TestSocket, type Account, type Stack } from './stack.js';

describe('groups, edits, deletes, reactions, polls and receipts', () => {
  let stack: Stack;
  let owner: Account;
  let admin: Account;
  let member: Account;
  let outsider: Account;

  beforeAll(async () => {
    stack = await startStack();
    [owner, admin, member, outsider] = [await register(stack, 'cv_owner'), await register(stack, 'cv_second'), await register(stack, 'cv_member'), await register(stack, 'cv_out')];
  });
  afterAll(async () => stack?.stop());

  const call = (who: Account, method: string, path: string, body?: unknown) => http(stack, method, path, { token: who.accessToken, body });
  const group = async (title: string, members: Account[]) => (await call(owner, 'POST', '/api/v1/chats', { type: 'group', title, memberIds: members.map((m) => m.id) })).body.id as string;
  let sent = 0;
  const say = async (who: Account, chatId: string, body: string) => {
    const answer = await call(who, 'POST', `/api/v1/chats/${chatId}/messages`, { clientMsgId: `m${++sent}`, body });
    if (answer.status !== 201) throw new Error(`send: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body;
  };
  const history = async (who: Account, chatId: string) => (await call(who, 'GET', `/api/v1/chats/${chatId}/messages`)).body.items;

  it('renames a group (admins only) and manages members, live', async () => {
    const chatId = await group('Before', [member]);
    const watcher = await TestSocket.open(stack.wsUrl, member.accessToken);
    await watcher.sync();
    expect((await call(member, 'PATCH', `/api/v1/chats/${chatId}`, { title: 'Nope' })).status).toBe(403);
    expect((await call(outsider, 'PATCH', `/api/v1/chats/${chatId}`, { title: 'Nope' })).status).toBe(404);
    const renamed = await call(owner, 'PATCH', `/api/v1/chats/${chatId}`, { title: 'After' });
    expect(renamed.status).toBe(200);
    expect(renamed.body.title).toBe('After');
    expect(await watcher.next((f) => f.type === 'chat.updated')).toMatchObject({ chatId, data: { title: 'After' } });

    const added = await call(owner, 'POST', `/api/v1/chats/${chatId}/members`, { userId: admin.id });
    expect(added.status).toBe(201);
    expect(added.body.members.map((m: { userId: string }) => m.userId)).toContain(admin.id);
    expect(await watcher.next((f) => f.type === 'member.added')).toMatchObject({ data: { userId: admin.id, role: 'member' } });
    expect((await call(owner, 'POST', `/api/v1/chats/${chatId}/members`, { userId: admin.id })).status).toBe(409);
    expect((await call(member, 'POST', `/api/v1/chats/${chatId}/members`, { userId: outsider.id })).status).toBe(403);
    expect((await call(owner, 'POST', `/api/v1/chats/${chatId}/members`, { userId: '01900000-0000-7000-8000-000000000000' })).status).toBe(404);
    // A member cannot remove others; anyone can leave.
    expect((await call(member, 'DELETE', `/api/v1/chats/${chatId}/members/${admin.id}`)).status).toBe(403);
    watcher.close();
  });

  it('stops delivering to a removed member at once, and starts for a new one', async () => {
    const chatId = await group('Membership', [member]);
    const memberSocket = await TestSocket.open(stack.wsUrl, member.accessToken);
    const newcomer = await TestSocket.open(stack.wsUrl, outsider.accessToken);
    await Promise.all([memberSocket.sync(), newcomer.sync()]);
    expect((await call(owner, 'DELETE', `/api/v1/chats/${chatId}/members/${member.id}`)).status).toBe(204);
    expect(await memberSocket.next((f) => f.type === 'member.removed')).toMatchObject({ data: { userId: member.id, reason: 'removed' } });
    await call(owner, 'POST', `/api/v1/chats/${chatId}/members`, { userId: outsider.id });
    await newcomer.next((f) => f.type === 'member.added');
    await say(owner, chatId, 'after the change');
    expect(await newcomer.next((f) => f.type === 'message.created')).toMatchObject({ data: { body: 'after the change' } });
    await new Promise((r) => setTimeout(r, 200));
    expect(memberSocket.frames.filter((f) => f.type === 'message.created')).toEqual([]);
    expect((await call(member, 'GET', `/api/v1/chats/${chatId}/messages`)).status).toBe(404);
    memberSocket.send({ op: 'send', chatId, clientMsgId: 'sneak', body: 'still here?' });
    expect(await memberSocket.next((f) => f.op === 'error')).toMatchObject({ code: 'not_found' });
    // Restore for the other tests.
    await call(owner, 'DELETE', `/api/v1/chats/${chatId}/members/${outsider.id}`);
    memberSocket.close();
    newcomer.close();
  });

  it('hands ownership over when the owner leaves', async () => {
    const chatId = (await call(member, 'POST', '/api/v1/chats', { type: 'group', title: 'Handover', memberIds: [owner.id, admin.id] })).body.id;
    expect((await call(member, 'DELETE', `/api/v1/chats/${chatId}/members/${member.id}`)).status).toBe(204);
    const chat = (await call(owner, 'GET', `/api/v1/chats/${chatId}`)).body;
    expect(chat.members).toHaveLength(2);
    expect(chat.members.filter((m: { role: string }) => m.role === 'owner')).toHaveLength(1);
    expect((await call(member, 'GET', `/api/v1/chats/${chatId}`)).status).toBe(404);
  });

  it('edits by the author only; deletes by the author or an admin, leaving a tombstone', async () => {
    const chatId = await group('Edits', [member, admin]);
    const msg = await say(member, chatId, 'typo here');
    const socket = await TestSocket.open(stack.wsUrl, owner.accessToken);
    await socket.sync();
    expect((await call(owner, 'PATCH', `/api/v1/messages/${msg.id}`, { body: 'not mine' })).status).toBe(403);
    expect((await call(outsider, 'PATCH', `/api/v1/messages/${msg.id}`, { body: 'x' })).status).toBe(404);
    const edited = await call(member, 'PATCH', `/api/v1/messages/${msg.id}`, { body: 'fixed' });
    expect(edited.status).toBe(200);
    expect(edited.body).toMatchObject({ id: msg.id, body: 'fixed', editedAt: expect.any(String) });
    expect(await socket.next((f) => f.type === 'message.edited')).toMatchObject({ data: { messageId: msg.id, body: 'fixed' } });
    await call(owner, 'POST', `/api/v1/messages/${msg.id}/reactions`, { emoji: '👍' });
    expect((await call(admin, 'DELETE', `/api/v1/messages/${msg.id}`)).status).toBe(403); // plain member, not admin
    expect((await call(owner, 'DELETE', `/api/v1/messages/${msg.id}`)).status).toBe(204); // the owner administers
    expect(await socket.next((f) => f.type === 'message.deleted')).toMatchObject({ data: { messageId: msg.id } });
    const [tomb] = await history(member, chatId);
    expect(tomb).toMatchObject({ id: msg.id, body: '', reactions: [], poll: null, deletedAt: expect.any(String) });
    expect((await call(member, 'PATCH', `/api/v1/messages/${msg.id}`, { body: 'undead' })).status).toBe(404);
    socket.close();
  });

  it('keeps one reaction per user per emoji, with counts and me', async () => {
    const chatId = await group('Reactions', [member]);
    const msg = await say(owner, chatId, 'react to me');
    expect((await call(member, 'POST', `/api/v1/messages/${msg.id}/reactions`, { emoji: '🎉' })).status).toBe(201);
    expect((await call(member, 'POST', `/api/v1/messages/${msg.id}/reactions`, { emoji: '🎉' })).status).toBe(201);
    expect((await call(owner, 'POST', `/api/v1/messages/${msg.id}/reactions`, { emoji: '🎉' })).status).toBe(201);
    expect((await call(owner, 'POST', `/api/v1/messages/${msg.id}/reactions`, { emoji: 'ok' })).status).toBe(201);
    expect((await call(outsider, 'POST', `/api/v1/messages/${msg.id}/reactions`, { emoji: '🎉' })).status).toBe(404);
    expect((await call(member, 'POST', `/api/v1/messages/${msg.id}/reactions`, { emoji: 'two words' })).status).toBe(400);
    const [seen] = await history(member, chatId);
    expect(seen.reactions).toEqual([
      { emoji: '🎉', count: 2, me: true },
      { emoji: 'ok', count: 1, me: false },
    ]);
    expect((await call(member, 'DELETE', `/api/v1/messages/${msg.id}/reactions/${encodeURIComponent('🎉')}`)).status).toBe(204);
    expect((await call(member, 'DELETE', `/api/v1/messages/${msg.id}/reactions/${encodeURIComponent('🎉')}`)).status).toBe(404);
    const [after] = await history(member, chatId);
    expect(after.reactions).toEqual([
      { emoji: '🎉', count: 1, me: false },
      { emoji: 'ok', count: 1, me: false },
    ]);
  });

  it('runs polls: single and multiple choice, changing a vote, closing by the creator, live poll.voted', async () => {
    const chatId = await group('Polls', [member, admin]);
    expect((await call(owner, 'POST', `/api/v1/chats/${chatId}/polls`, { question: 'One option?', options: ['only'] })).status).toBe(400);
    expect((await call(owner, 'POST', `/api/v1/chats/${chatId}/polls`, { question: 'Dupes?', options: ['a', 'a'] })).status).toBe(400);
    expect((await call(outsider, 'POST', `/api/v1/chats/${chatId}/polls`, { question: 'Hi?', options: ['a', 'b'] })).status).toBe(404);
    const created = await call(owner, 'POST', `/api/v1/chats/${chatId}/polls`, { question: 'Lunch?', options: ['pizza', 'soup', 'salad'] });
    expect(created.status).toBe(201);
    const poll = created.body.poll;
    expect(poll).toMatchObject({ question: 'Lunch?', multiple: false, closed: false, myVotes: [] });
    expect(poll.options.map((o: { text: string; votes: number }) => [o.text, o.votes])).toEqual([['pizza', 0], ['soup', 0], ['salad', 0]]);
    const socket = await TestSocket.open(stack.wsUrl, owner.accessToken);
    await socket.sync();
    const [pizza, soup] = poll.options.map((o: { id: string }) => o.id);
    expect((await call(member, 'POST', `/api/v1/polls/${poll.id}/votes`, { optionIds: [pizza, soup] })).status).toBe(400);
    expect((await call(member, 'POST', `/api/v1/polls/${poll.id}/votes`, { optionIds: ['99'] })).status).toBe(400);
    const voted = await call(member, 'POST', `/api/v1/polls/${poll.id}/votes`, { optionIds: [pizza] });
    expect(voted.status).toBe(200);
    expect(voted.body.myVotes).toEqual([pizza]);
    expect(await socket.next((f) => f.type === 'poll.voted')).toMatchObject({ data: { pollId: poll.id, userId: member.id, optionIds: [pizza] } });
    const changed = await call(member, 'POST', `/api/v1/polls/${poll.id}/votes`, { optionIds: [soup] });
    expect(changed.body.options.map((o: { votes: number }) => o.votes)).toEqual([0, 1, 0]);
    await call(admin, 'POST', `/api/v1/polls/${poll.id}/votes`, { optionIds: [soup] });
    expect((await call(member, 'POST', `/api/v1/polls/${poll.id}/close`)).status).toBe(403);
    const closed = await call(owner, 'POST', `/api/v1/polls/${poll.id}/close`);
    expect(closed.body).toMatchObject({ closed: true });
    expect((await call(admin, 'POST', `/api/v1/polls/${poll.id}/votes`, { optionIds: [pizza] })).status).toBe(400);
    const [message] = await history(member, chatId);
    expect(message.poll).toMatchObject({ id: poll.id, closed: true, myVotes: [soup] });
    expect(message.poll.options.map((o: { votes: number }) => o.votes)).toEqual([0, 2, 0]);
    const multi = await call(owner, 'POST', `/api/v1/chats/${chatId}/polls`, { question: 'Which days?', options: ['mon', 'tue', 'wed'], multiple: true });
    const ids = multi.body.poll.options.map((o: { id: string }) => o.id);
    const both = await call(member, 'POST', `/api/v1/polls/${multi.body.poll.id}/votes`, { optionIds: [ids[0], ids[2]] });
    expect(both.body.options.map((o: { votes: number }) => o.votes)).toEqual([1, 0, 1]);
    expect((await call(outsider, 'POST', `/api/v1/polls/${multi.body.poll.id}/votes`, { optionIds: [ids[0]] })).status).toBe(404);
    socket.close();
  });

  it('tracks read positions: unread counts follow, receipts arrive live, over HTTP and WebSocket', async () => {
    const chatId = await group('Receipts', [member]);
    const first = await say(owner, chatId, 'one');
    await say(owner, chatId, 'two');
    const third = await say(owner, chatId, 'three');
    const unread = async () => {
      const list = (await call(member, 'GET', '/api/v1/chats')).body.items;
      return list.find((c: { id: string }) => c.id === chatId).unreadCount;
    };
    await eventually(async () => ((await unread()) === 3 ? true : undefined));
    const ownerSocket = await TestSocket.open(stack.wsUrl, owner.accessToken);
    await ownerSocket.sync();
    expect((await call(member, 'POST', `/api/v1/chats/${chatId}/read`, { messageId: first.id })).status).toBe(204);
    expect(await ownerSocket.next((f) => f.type === 'read.updated')).toMatchObject({ chatId, data: { userId: member.id, seq: first.seq } });
    await eventually(async () => ((await unread()) === 2 ? true : undefined));
    const memberSocket = await TestSocket.open(stack.wsUrl, member.accessToken);
    memberSocket.send({ op: 'read', chatId, messageId: third.id });
    expect(await ownerSocket.next((f) => f.type === 'read.updated')).toMatchObject({ data: { userId: member.id, seq: third.seq } });
    await eventually(async () => ((await unread()) === 0 ? true : undefined));
    // Positions only move forward.
    await call(member, 'POST', `/api/v1/chats/${chatId}/read`, { messageId: first.id });
    await new Promise((r) => setTimeout(r, 200));
    expect(await unread()).toBe(0);
    expect((await call(outsider, 'POST', `/api/v1/chats/${chatId}/read`, { messageId: first.id })).status).toBe(404);
    // A client loading the chat gets the positions too (the web client's "Read" after a reload).
    expect((await call(owner, 'GET', `/api/v1/chats/${chatId}/reads`)).body).toEqual({ items: [{ userId: member.id, seq: third.seq }] });
    expect((await call(outsider, 'GET', `/api/v1/chats/${chatId}/reads`)).status).toBe(404);
    memberSocket.send({ op: 'read', chatId, messageId: '01900000-0000-7000-8000-000000000000' });
    expect(await memberSocket.next((f) => f.op === 'error')).toMatchObject({ code: 'not_found' });
    ownerSocket.close();
    memberSocket.close();
  });

  it('adds one reaction for the same emoji sent several times at once (a double click), live and in history', async () => {
    const chatId = await group('Double click', [member]);
    const message = await say(owner, chatId, 'react to me');
    const watcher = await TestSocket.open(stack.wsUrl, owner.accessToken);
    const answers = await Promise.all(Array.from({ length: 4 }, () => call(member, 'POST', `/api/v1/messages/${message.id}/reactions`, { emoji: '🎉' })));
    expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201]);
    // A message after them, as the positive signal: every event before it has been relayed by then.
    const marker = await say(owner, chatId, 'after the clicks');
    await watcher.next((f) => f.type === 'message.created' && f.data.id === marker.id, 10_000);
    // Before, each request that read "not reacted" appended its own ReactionAdded: others counted 2 or more.
    expect(watcher.frames.filter((f) => f.type === 'reaction.added' && f.chatId === chatId)).toHaveLength(1);
    const reacted = await eventually(async () => (await history(owner, chatId)).find((m: { id: string; reactions: unknown[] }) => m.id === message.id && m.reactions.length > 0));
    expect(reacted.reactions).toEqual([{ emoji: '🎉', count: 1, me: false }]);
    watcher.close();
  });

  it('answers a history page that would not fit in one bus message shorter, with a cursor, and pages through all of it', async () => {
    const chatId = await group('Heavy pages', [member]);
    // 45 messages of 4,096 control characters: 24 KiB each as JSON (\u0001), over 1 MiB for a
    // page of 50. Before, the page went over NATS's payload limit: 503 for every member, every time.
    const heavy = '\u0001'.repeat(4096);
    const sent: string[] = [];
    for (let i = 0; i < 45; i++) sent.push((await call(member, 'POST', `/api/v1/chats/${chatId}/messages`, { clientMsgId: `heavy-${i}`, body: heavy })).body.id);
    await eventually(async () => ((await call(owner, 'GET', `/api/v1/chats/${chatId}/messages?limit=1`)).body.items[0]?.id === sent.at(-1) ? true : undefined));
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await call(owner, 'GET', `/api/v1/chats/${chatId}/messages${cursor ? `?before=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((m: { id: string }) => m.id));
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBeGreaterThan(1);
    expect(seen.filter((id) => sent.includes(id)).reverse()).toEqual(sent);
  });

  it('shows a chat\'s last message in the chat list as history does: its poll and reactions', async () => {
    const chatId = await group('Previews', [member]);
    const posted = await call(owner, 'POST', `/api/v1/chats/${chatId}/polls`, { question: 'Preview?', options: ['yes', 'no'] });
    expect(posted.status).toBe(201);
    expect((await call(member, 'POST', `/api/v1/messages/${posted.body.id}/reactions`, { emoji: '👀' })).status).toBe(201);
    const [newest] = await eventually(async () => {
      const items = await history(owner, chatId);
      return items[0]?.reactions.length ? items : undefined;
    });
    // Before, the list's lastMessage had poll: null and no reactions (the live frame had them).
    const listed = (await call(owner, 'GET', '/api/v1/chats')).body.items.find((c: { id: string }) => c.id === chatId);
    expect(listed.lastMessage).toEqual(newest);
    expect((await call(owner, 'GET', `/api/v1/chats/${chatId}`)).body.lastMessage).toEqual(newest);
    expect(newest.poll).toMatchObject({ question: 'Preview?' });
  });

  it('refuses a reply to a deleted message, over WebSocket and HTTP', async () => {
    const chatId = await group('Replies to the gone', [member]);
    const gone = await say(owner, chatId, 'soon deleted');
    expect((await call(owner, 'DELETE', `/api/v1/messages/${gone.id}`)).status).toBe(204);
    const replyOverHttp = await call(member, 'POST', `/api/v1/chats/${chatId}/messages`, { clientMsgId: 'reply-gone-http', body: 'to the gone', replyTo: gone.id });
    expect(replyOverHttp.status).toBe(400);
    expect(replyOverHttp.body.error.code).toBe('invalid_request');
    const socket = await TestSocket.open(stack.wsUrl, member.accessToken);
    socket.send({ op: 'send', chatId, clientMsgId: 'reply-gone-ws', body: 'to the gone', replyTo: gone.id });
    expect(await socket.next((f) => f.op === 'error' || f.op === 'ack')).toMatchObject({ op: 'error', code: 'invalid_request', ref: 'reply-gone-ws' });
    socket.close();
    // Nothing was stored.
    expect((await history(owner, chatId)).map((m: { body: string }) => m.body)).toEqual(['']);
  });

  it('never moves a read position back, also when an older mark follows a newer one before the projection has it', async () => {
    const chatId = await group('Receipts race', [member]);
    const [first, second, third] = [await say(owner, chatId, 'r1'), await say(owner, chatId, 'r2'), await say(owner, chatId, 'r3')];
    const ownerSocket = await TestSocket.open(stack.wsUrl, owner.accessToken);
    // The receipts projection held back (its writes wait for the table), as a lagging projector.
    const holder = await holdLock(stack.env.databaseUrl, 'LOCK TABLE messages.read_positions IN EXCLUSIVE MODE');
    try {
      expect((await call(member, 'POST', `/api/v1/chats/${chatId}/read`, { messageId: second.id })).status).toBe(204);
      expect((await call(member, 'POST', `/api/v1/chats/${chatId}/read`, { messageId: first.id })).status).toBe(204);
      await holder.release();
    } finally {
      await holder.end();
    }
    // A newer mark, as the positive signal: every receipt before it has been relayed by then.
    expect((await call(member, 'POST', `/api/v1/chats/${chatId}/read`, { messageId: third.id })).status).toBe(204);
    const relayed: number[] = [];
    while (relayed.at(-1) !== third.seq) relayed.push((await ownerSocket.next((f) => f.type === 'read.updated' && f.chatId === chatId)).data.seq);
    expect(relayed).toEqual([second.seq, third.seq]);
    await eventually(async () => ((await call(owner, 'GET', `/api/v1/chats/${chatId}/reads`)).body.items[0]?.seq === third.seq ? true : undefined), 5_000, 'the newest position read back');
    ownerSocket.close();
  });
});
