import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, Sequencer } from '@parley/bus';
import { messageSent, newId, streamName, subjects } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { eventually } from '@parley/testing';
import { http, register, startStack, TestSocket, type Account, type Stack } from './stack.js';

/**
 * The walking skeleton, as a user does it: two people register, open a direct chat, connect over
 * WebSocket; one sends, gets an ack with the chat's seq, the other receives it live, and history
 * returns it from the Postgres projection.
 */
describe('one message through gateway, JetStream, projection and back', () => {
  let stack: Stack;
  let alice: Account;
  let bob: Account;
  let chatId: string;

  beforeAll(async () => {
    stack = await startStack({ WS_AUTH_TIMEOUT_SECONDS: '1' });
    alice = await register(stack, 'alice');
    bob = await register(stack, 'bob');
  });
  afterAll(async () => stack?.stop());

  it('opens one direct chat per pair: the second call returns the first', async () => {
    const first = await http(stack, 'POST', '/api/v1/chats', { token: alice.accessToken, body: { type: 'direct', userId: bob.id } });
    expect(first.status).toBe(201);
    expect(first.body.members.map((m: { userId: string }) => m.userId).sort()).toEqual([alice.id, bob.id].sort());
    const again = await http(stack, 'POST', '/api/v1/chats', { token: bob.accessToken, body: { type: 'direct', userId: alice.id } });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    chatId = first.body.id;
  });

  it('acks a send after storage, delivers it live to the peer, and serves it from history', async () => {
    const a = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const b = await TestSocket.open(stack.wsUrl, bob.accessToken);
    await Promise.all([a.sync(), b.sync()]);

    a.send({ op: 'send', chatId, clientMsgId: 'c-1', body: 'hello bob' });
    const ack = await a.next((f) => f.op === 'ack');
    // seq 1 is the chat's creation; the first message is seq 2.
    expect(ack).toEqual({ op: 'ack', clientMsgId: 'c-1', messageId: expect.any(String), seq: 2 });

    const live = await b.next((f) => f.op === 'event' && f.type === 'message.created');
    expect(live).toMatchObject({ chatId, seq: 2, data: { id: ack.messageId, senderId: alice.id, body: 'hello bob', chatId } });

    const history = await eventually(async () => {
      const page = await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: bob.accessToken });
      return page.body.items.length === 1 ? page : undefined;
    });
    expect(history.status).toBe(200);
    expect(history.body.items[0]).toMatchObject({ id: ack.messageId, seq: 2, body: 'hello bob', senderId: alice.id, replyTo: null, deletedAt: null });
    expect(history.body.nextCursor).toBeNull();
    a.close();
    b.close();
  });

  it('gives the same ack for a resent clientMsgId and stores no second message', async () => {
    const a = await TestSocket.open(stack.wsUrl, alice.accessToken);
    a.send({ op: 'send', chatId, clientMsgId: 'c-2', body: 'once' });
    const first = await a.next((f) => f.op === 'ack' && f.clientMsgId === 'c-2');
    a.close();
    // A reconnect and a retry, as a client does when it never saw the ack.
    const again = await TestSocket.open(stack.wsUrl, alice.accessToken);
    again.send({ op: 'send', chatId, clientMsgId: 'c-2', body: 'once' });
    const second = await again.next((f) => f.op === 'ack' && f.clientMsgId === 'c-2');
    expect(second).toEqual(first);
    again.send({ op: 'send', chatId, clientMsgId: 'c-3', body: 'next' });
    const third = await again.next((f) => f.op === 'ack' && f.clientMsgId === 'c-3');
    expect(third.seq).toBe(first.seq + 1);
    const page = await eventually(async () => {
      const p = await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: alice.accessToken });
      return p.body.items.length === 3 ? p : undefined;
    });
    expect(page.body.items.map((m: { body: string }) => m.body)).toEqual(['next', 'once', 'hello bob']);
    again.close();
  });

  it('recognises a resend after the dedup window has passed, through the projection', async () => {
    // Stand-in for a send older than JetStream's two-minute dedup window: stored under another msgId.
    const bus = await connectBus({ url: stack.env.natsUrl, identity: stack.env.busIdentity, name: 'old-send', log: createLogger({ service: 't', level: 'silent' }) });
    try {
      const sequencer = new Sequencer(bus.js, bus.jsm, streamName(stack.env.namespace, 'chats'));
      const stored: { clientMsgId: string; messageId: string; seq: number }[] = [];
      for (const clientMsgId of ['long-ago', 'long-ago-2']) {
        const command = { chatId, senderId: alice.id, messageId: newId(), clientMsgId, body: 'sent before the outage', replyTo: null, attachmentIds: [], at: new Date(), eventId: newId(), correlationId: newId() };
        const original = await sequencer.append(subjects.chat(stack.env.namespace, chatId), `outside-the-window-${clientMsgId}`, (seq) => messageSent(command, seq));
        stored.push({ clientMsgId, messageId: command.messageId, seq: original.event.seq });
      }
      await eventually(async () => {
        const page = await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: alice.accessToken });
        return stored.every((s) => page.body.items.some((m: { id: string }) => m.id === s.messageId)) ? true : undefined;
      });
      const socket = await TestSocket.open(stack.wsUrl, alice.accessToken);
      // Back to back, as a reconnecting client flushes its outbox: the gateway checks them in one
      // lookup, and each gets its own answer.
      socket.send({ op: 'send', chatId, clientMsgId: 'long-ago-2', body: 'sent before the outage' });
      socket.send({ op: 'send', chatId, clientMsgId: 'after-it', body: 'new' });
      socket.send({ op: 'send', chatId, clientMsgId: 'long-ago', body: 'sent before the outage' });
      for (const s of stored) {
        expect(await socket.next((f) => f.op === 'ack' && f.clientMsgId === s.clientMsgId)).toEqual({ op: 'ack', clientMsgId: s.clientMsgId, messageId: s.messageId, seq: s.seq });
      }
      expect((await socket.next((f) => f.op === 'ack' && f.clientMsgId === 'after-it')).seq).toBe(stored[1]!.seq + 1);
      socket.close();
    } finally {
      await bus.nc.close();
    }
  });

  it('keeps seq gap-free under concurrent sends from two sockets', async () => {
    const a = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const b = await TestSocket.open(stack.wsUrl, bob.accessToken);
    for (let i = 0; i < 20; i++) {
      a.send({ op: 'send', chatId, clientMsgId: `a-${i}`, body: `a${i}` });
      b.send({ op: 'send', chatId, clientMsgId: `b-${i}`, body: `b${i}` });
    }
    const acks = [];
    for (let i = 0; i < 20; i++) {
      acks.push(await a.next((f) => f.op === 'ack'), await b.next((f) => f.op === 'ack'));
    }
    const seqs = acks.map((f) => f.seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: 40 }, (_, i) => seqs[0] + i));
    a.close();
    b.close();
  });

  it('answers a bad JSON frame with an error and keeps the connection', async () => {
    const a = await TestSocket.open(stack.wsUrl, alice.accessToken);
    a.send('{not json');
    expect(await a.next((f) => f.op === 'error')).toMatchObject({ code: 'invalid_json' });
    a.send({ op: 'send', chatId, clientMsgId: 'x', body: 42 });
    expect(await a.next((f) => f.op === 'error')).toMatchObject({ code: 'invalid_request', ref: 'x' });
    a.send({ op: 'send', chatId, clientMsgId: 'y', body: 'hi', extra: true });
    expect(await a.next((f) => f.op === 'error')).toMatchObject({ code: 'invalid_request', ref: 'y' });
    a.send({ op: 'dance' });
    expect(await a.next((f) => f.op === 'error')).toMatchObject({ code: 'unknown_op' });
    // A read that fails its schema is refused with its messageId as `ref` (docs/protocol.md), as one
    // that fails later; before, it had none, and a client could not tell which read to retry.
    a.send({ op: 'read', chatId, messageId: 'not-a-uuid' });
    expect(await a.next((f) => f.op === 'error')).toMatchObject({ code: 'invalid_request', ref: 'not-a-uuid' });
    await a.sync();
    expect(a.closed).toBeNull();
    a.close();
  });

  it('before authentication, checks a frame itself before asking for authentication (the order protocol.md gives)', async () => {
    const u = await TestSocket.open(stack.wsUrl);
    u.send('{not json');
    expect(await u.next((f) => f.op === 'error')).toMatchObject({ code: 'invalid_json' });
    u.send({ op: 'send', chatId, clientMsgId: 'n\u0000ul', body: 'x' });
    expect(await u.next((f) => f.op === 'error')).toMatchObject({ code: 'invalid_request' });
    u.ws.send(Buffer.from('{"op":"ping"}'), { binary: true });
    expect(await u.next((f) => f.op === 'error')).toMatchObject({ code: 'invalid_request' });
    u.send({ op: 'send', chatId, clientMsgId: 'early', body: 'x' });
    expect(await u.next((f) => f.op === 'error')).toMatchObject({ code: 'unauthorized' });
    await u.sync();
    expect(u.closed).toBeNull();
    u.close();
  });

  it('does not let a non-member send to or hear from a chat', async () => {
    const eve = await register(stack, 'eve');
    const e = await TestSocket.open(stack.wsUrl, eve.accessToken);
    e.send({ op: 'send', chatId, clientMsgId: 'e-1', body: 'let me in' });
    expect(await e.next((f) => f.op === 'error')).toMatchObject({ code: 'not_found', ref: 'e-1' });
    const a = await TestSocket.open(stack.wsUrl, alice.accessToken);
    a.send({ op: 'send', chatId, clientMsgId: 'private-1', body: 'secret' });
    await a.next((f) => f.op === 'ack' && f.clientMsgId === 'private-1');
    await e.sync();
    await new Promise((r) => setTimeout(r, 200));
    expect(e.frames.filter((f) => f.op === 'event')).toEqual([]);
    const read = await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: eve.accessToken });
    expect(read.status).toBe(404);
    e.close();
    a.close();
  });

  it('refuses a socket with a bad token, and one that never authenticates', async () => {
    await expect(TestSocket.open(stack.wsUrl, 'not-a-token')).rejects.toThrow(/401/);
    const quiet = await TestSocket.open(stack.wsUrl);
    quiet.send({ op: 'send', chatId, clientMsgId: 'q', body: 'hi' });
    expect(await quiet.next((f) => f.op === 'error')).toMatchObject({ code: 'unauthorized' });
    const closed = await quiet.waitClosed(4_000);
    expect(closed.code).toBe(4401);
  });

  it('authenticates with an auth frame', async () => {
    const s = await TestSocket.open(stack.wsUrl);
    s.send({ op: 'auth', token: bob.accessToken });
    expect(await s.next((f) => f.op === 'authenticated')).toEqual({ op: 'authenticated', userId: bob.id });
    s.send({ op: 'send', chatId, clientMsgId: 'via-auth-frame', body: 'works' });
    expect(await s.next((f) => f.op === 'ack')).toMatchObject({ clientMsgId: 'via-auth-frame' });
    s.close();
  });

  it('closes a socket that sends an oversize frame with 1009', async () => {
    const a = await TestSocket.open(stack.wsUrl, alice.accessToken);
    a.send({ op: 'send', chatId, clientMsgId: 'big', body: 'x'.repeat(70 * 1024) });
    const closed = await a.waitClosed();
    expect(closed.code).toBe(1009);
  });
});
