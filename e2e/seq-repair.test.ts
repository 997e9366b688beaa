import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { newId, sendMessageId, streamName, subjects } from '@parley/contracts';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { startUsersService } from '../services/users/src/service.js';
import { startMessagesService } from '../services/messages/src/service.js';
import { startGatewayService } from '../services/gateway/src/service.js';
import { repairMessageId } from '../services/messages/src/reactors/seq-repair.js';
import { http, register, TestSocket, type Account } from './stack.js';


/**
 * The repair of two events with one chat seq (NATS 2.9.10 in a cluster: docs/reliability.md). The
 * store defect cannot be caused on demand, so it is injected: a second MessageSent published
 * straight to the chat's subject with a seq the chat already has, bypassing the expected-sequence
 * header, and stored and acknowledged by JetStream as the defect stores it. Everything else is
 * the real system: the projection finds it and queues it, the seq-repair reactor appends it again.
 */
describe('a message stored with a chat seq another event already had', () => {
  let env: TestEnv;
  let vars: Record<string, string>;
  let users: Awaited<ReturnType<typeof startUsersService>>;
  let messages: Awaited<ReturnType<typeof startMessagesService>>;
  let gateway: Awaited<ReturnType<typeof startGatewayService>>;
  let nc: NatsConnection;
  let db: pg.Client;
  let ann: Account;
  let bob: Account;
  const stack = { get baseUrl() { return `http://127.0.0.1:${gateway.port}`; } };
  const wsUrl = () => `ws://127.0.0.1:${gateway.port}/ws`;

  beforeAll(async () => {
    env = await createTestEnv();
    vars = { ...env.env, PORT: '0', METRICS_PORT: '0', PROJECTOR_ACK_WAIT_MS: '2000' };
    users = await startUsersService(vars);
    messages = await startMessagesService(vars);
    gateway = await startGatewayService(vars);
    [ann, bob] = [await register(stack, 'rep_ann'), await register(stack, 'rep_bob')];
    nc = await env.connectNats('seq-repair-test');
    db = new pg.Client({ connectionString: env.databaseUrl });
    await db.connect();
  });

  afterAll(async () => {
    await db?.end();
    await nc?.close();
    await gateway?.stop();
    await messages?.stop();
    await users?.stop();
    await env?.cleanup();
  });

  const stream = () => streamName(env.namespace, 'chats');

  /**
   * A group of Ann and Bob with two messages, the second (the chat's head) seen live by `follower`
   * if given: its gateway follows the chat and is past the head when the colliding copy comes.
   */
  async function chatWithTwoMessages(follower?: TestSocket): Promise<{ chatId: string; head: number }> {
    const created = await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'group', title: 'repair', memberIds: [bob.id] } });
    expect(created.status).toBe(201);
    const chatId: string = created.body.id;
    let head = 0;
    for (const text of ['first words', 'second words']) {
      const sent = await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId: newId(), body: text } });
      expect(sent.status).toBe(201);
      head = sent.body.seq;
    }
    await follower?.next((f) => f.op === 'event' && f.chatId === chatId && f.seq === head, 10_000);
    return { chatId, head };
  }

  /**
   * What the defect stores: Bob's MessageSent with the chat's current head seq, published as the
   * gateway publishes a send (its JetStream message id too) but without the expected last subject
   * sequence, so JetStream stores and acknowledges it although the seq is taken.
   */
  async function injectCollision(chatId: string, seq: number, body: string, copyOf?: { streamSeq: number; event: { data: object; meta: { eventId: string; occurredAt: string; correlationId: string } } }) {
    const made = {
      type: 'MessageSent',
      version: 1,
      chatId,
      seq,
      data: { messageId: newId(), senderId: bob.id, clientMsgId: newId(), body, replyTo: null, attachmentIds: [] },
      meta: { eventId: newId(), occurredAt: new Date().toISOString(), actorId: bob.id, correlationId: newId(), causationId: null },
    };
    // A copy of an earlier lost event, as the seq repair appends it (same data, its own message id).
    const event = copyOf ? { ...made, data: copyOf.event.data as typeof made.data, meta: { ...made.meta, ...copyOf.event.meta, eventId: newId(), causationId: copyOf.event.meta.eventId } } : made;
    const text = JSON.stringify(event);
    const msgID = copyOf ? repairMessageId(chatId, copyOf.streamSeq) : sendMessageId(chatId, bob.id, event.data.clientMsgId);
    const ack = await jetstream(nc).publish(subjects.chat(env.namespace, chatId), text, { msgID });
    expect(ack.duplicate).toBe(false);
    return { event, text, streamSeq: ack.seq };
  }

  async function history(chatId: string): Promise<{ id: string; seq: number; body: string; createdAt: string }[]> {
    const r = await http(stack, 'GET', `/api/v1/chats/${chatId}/messages?limit=100`, { token: ann.accessToken });
    expect(r.status).toBe(200);
    return r.body.items;
  }

  /** A counter of the messages service, by its labels other than `service` (e.g. `outcome="appended"`). */
  async function counter(name: string, labels = ''): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${messages.metricsPort}/metrics`)).text();
    const wanted = `${name}{${[labels, 'service="messages"'].filter(Boolean).join(',')}} `;
    const line = text.split('\n').find((l) => l.startsWith(wanted));
    return line ? Number(line.slice(wanted.length)) : 0;
  }

  async function chatStream(chatId: string): Promise<{ streamSeq: number; text: string; event: any }[]> {
    const jsm = await jetstreamManager(nc);
    const out: { streamSeq: number; text: string; event: any }[] = [];
    for (let next = 1; ; ) {
      const stored = await jsm.direct.getMessage(stream(), { next_by_subj: subjects.chat(env.namespace, chatId), seq: next });
      if (!stored) return out;
      out.push({ streamSeq: stored.seq, text: stored.string(), event: stored.json() });
      next = stored.seq + 1;
    }
  }

  it('appends the lost message again under a new seq: in history, search and live delivery once, its id kept for a resend', async () => {
    const follower = await TestSocket.open(wsUrl(), ann.accessToken);
    const { chatId, head } = await chatWithTwoMessages(follower);
    const [collisions, repairs] = [await counter('chat_seq_collisions_total'), await counter('chat_seq_repairs_total', 'outcome="appended"')];

    const lost = await injectCollision(chatId, head, 'kumquat recovered words');

    // History: both messages at head, each once, the lost one at the next seq with its id and time.
    const items = await eventually(async () => {
      const list = await history(chatId);
      return list.some((m) => m.id === lost.event.data.messageId) ? list : undefined;
    }, 15_000, 'the lost message in history');
    expect(items.filter((m) => m.seq === head).map((m) => m.body)).toEqual(['second words']);
    const repaired = items.filter((m) => m.id === lost.event.data.messageId);
    expect(repaired).toHaveLength(1);
    expect(repaired[0]).toMatchObject({ seq: head + 1, body: 'kumquat recovered words', createdAt: lost.event.meta.occurredAt });
    expect(items.map((m) => m.seq)).toEqual([...new Set(items.map((m) => m.seq))]);

    // The stream: the lost copy is gone, the repair is the chat's last event, its data byte for byte the lost one's.
    const events = await chatStream(chatId);
    expect(events.some((e) => e.streamSeq === lost.streamSeq)).toBe(false);
    const last = events.at(-1)!;
    expect(last.event).toMatchObject({ type: 'MessageSent', seq: head + 1 });
    expect(last.text).toContain(`"data":${JSON.stringify(lost.event.data)}`);
    expect(last.event.meta).toEqual({ ...lost.event.meta, eventId: last.event.meta.eventId, causationId: lost.event.meta.eventId });
    expect(last.event.meta.eventId).not.toBe(lost.event.meta.eventId);
    expect(events.filter((e) => e.event.seq === head)).toHaveLength(1);

    // Live: the follower got the repaired message once, at its new seq, and the colliding copy never.
    await follower.next((f) => f.op === 'event' && f.type === 'message.created' && f.data.id === lost.event.data.messageId && f.seq === head + 1, 10_000);
    await new Promise((r) => setTimeout(r, 500));
    await follower.sync();
    expect(follower.frames.filter((f) => f.op === 'event' && f.data?.id === lost.event.data.messageId)).toEqual([]);
    expect(follower.frames.filter((f) => f.op === 'event' && f.seq === head)).toEqual([]);
    follower.close();

    // Search finds it.
    const found = await eventually(async () => {
      const r = await http(stack, 'GET', `/api/v1/search?q=kumquat`, { token: ann.accessToken });
      return r.body.items?.length > 0 ? r.body.items : undefined;
    }, 5_000, 'search');
    expect(found.map((m: { id: string }) => m.id)).toEqual([lost.event.data.messageId]);

    // Bob resends the same clientMsgId from a new connection: the same message, at its new seq.
    const sender = await TestSocket.open(wsUrl(), bob.accessToken);
    sender.send({ op: 'send', chatId, clientMsgId: lost.event.data.clientMsgId, body: 'kumquat recovered words' });
    const ack = await sender.next((f) => f.op === 'ack' && f.clientMsgId === lost.event.data.clientMsgId, 10_000);
    expect(ack).toMatchObject({ messageId: lost.event.data.messageId, seq: head + 1 });
    sender.close();
    expect((await history(chatId)).filter((m) => m.body === 'kumquat recovered words')).toHaveLength(1);

    expect(await counter('chat_seq_collisions_total')).toBe(collisions + 1);
    expect(await counter('chat_seq_repairs_total', 'outcome="appended"')).toBe(repairs + 1);
    expect((await db.query('SELECT count(*)::int AS n FROM messages.seq_repairs')).rows[0].n).toBe(0);
  });

  it('keeps the repair queued across a restart before its reactor runs, and repairs it once after', async () => {
    const { chatId, head } = await chatWithTwoMessages();
    // The messages service again, its seq-repair reactor idle: the projection queues, nothing drains.
    await messages.stop();
    messages = await startMessagesService(vars, { idleReactors: ['seqRepair'] });
    const lost = await injectCollision(chatId, head, 'quince waiting words');
    const queued = await eventually(async () => {
      const { rows } = await db.query('SELECT message_id, chat_id, seq, stream_seq FROM messages.seq_repairs WHERE message_id = $1', [lost.event.data.messageId]);
      return rows[0];
    }, 15_000, 'the repair queued');
    expect(queued).toEqual({ message_id: lost.event.data.messageId, chat_id: chatId, seq: head, stream_seq: lost.streamSeq });
    expect((await history(chatId)).some((m) => m.id === lost.event.data.messageId), JSON.stringify({ h: await history(chatId), s: await chatStream(chatId) })).toBe(false);

    // A restart with every reactor: the row is still there, and the message comes back once.
    await messages.stop();
    messages = await startMessagesService(vars);
    const items = await eventually(async () => {
      const list = await history(chatId);
      return list.some((m) => m.id === lost.event.data.messageId) ? list : undefined;
    }, 15_000, 'the lost message in history after the restart');
    expect(items.filter((m) => m.id === lost.event.data.messageId).map((m) => m.seq)).toEqual([head + 1]);
    await eventually(async () => ((await db.query('SELECT 1 FROM messages.seq_repairs')).rowCount === 0 ? true : undefined), 5_000, 'the queue emptied');

    // A repeat of the repair (a crash after the append's ack, before the row went) appends nothing.
    await db.query('INSERT INTO messages.seq_repairs (message_id, chat_id, seq, stream_seq, queued_at) VALUES ($1, $2, $3, $4, now())', [
      lost.event.data.messageId,
      chatId,
      head,
      lost.streamSeq,
    ]);
    await eventually(async () => ((await db.query('SELECT 1 FROM messages.seq_repairs')).rowCount === 0 ? true : undefined), 10_000, 'the repeat drained');
    expect((await chatStream(chatId)).filter((e) => e.event.data?.messageId === lost.event.data.messageId)).toHaveLength(1);
    expect((await history(chatId)).filter((m) => m.id === lost.event.data.messageId)).toHaveLength(1);
  });

  it('repairs once a message whose repaired copy lost its seq again (seen in the cluster fault scenario)', async () => {
    const { chatId, head } = await chatWithTwoMessages();
    await messages.stop();
    messages = await startMessagesService(vars, { idleReactors: ['seqRepair'] });
    const lost = await injectCollision(chatId, head, 'medlar twice lost');
    // Another writer appends at the next seq, and the repair of the lost copy (its message id as the
    // reactor makes it: a retry within the duplicate window is answered with it) lands at that seq too.
    const sent = await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId: newId(), body: 'third words' } });
    expect(sent.body.seq).toBe(head + 1);
    const again = await injectCollision(chatId, head + 1, '', lost);
    const rows = await eventually(async () => {
      const r = await db.query('SELECT stream_seq, seq FROM messages.seq_repairs WHERE message_id = $1 ORDER BY stream_seq', [lost.event.data.messageId]);
      return r.rows.length === 2 ? r.rows : undefined;
    }, 15_000, 'both lost copies queued');
    expect(rows).toEqual([{ stream_seq: lost.streamSeq, seq: head }, { stream_seq: again.streamSeq, seq: head + 1 }]);

    await messages.stop();
    messages = await startMessagesService(vars);
    await eventually(async () => ((await db.query('SELECT 1 FROM messages.seq_repairs')).rowCount === 0 ? true : undefined), 15_000, 'the queue emptied');
    const items = await eventually(async () => {
      const list = await history(chatId);
      return list.some((m) => m.id === lost.event.data.messageId) ? list : undefined;
    }, 15_000, 'the twice lost message in history');
    expect(items.filter((m) => m.id === lost.event.data.messageId).map((m) => [m.seq, m.body])).toEqual([[head + 2, 'medlar twice lost']]);
    const events = await chatStream(chatId);
    expect(events.filter((e) => e.event.data?.messageId === lost.event.data.messageId).map((e) => e.event.seq)).toEqual([head + 2]);
    expect(events.map((e) => e.event.seq)).toEqual([...new Set(events.map((e) => e.event.seq))]);
  });
  it('keeps a repair whose lost copy the stream does not return for a later drain, and gives it up long after the send', async () => {
    const queuedAt = async (streamSeq: number) => (await db.query('SELECT 1 FROM messages.seq_repairs WHERE stream_seq = $1', [streamSeq])).rowCount;
    await messages.stop();
    messages = await startMessagesService(vars, { idleReactors: ['seqRepair'] });
    const first = await chatWithTwoMessages();
    const unreadable = await injectCollision(first.chatId, first.head, 'sorb unreadable words');
    await eventually(async () => ((await queuedAt(unreadable.streamSeq)) === 1 ? true : undefined), 15_000, 'the unreadable copy queued');
    // The stream answers "no message" for it, as a leader elected in the turmoil did (NATS 2.9.10).
    await (await jetstreamManager(nc)).streams.deleteMessage(stream(), unreadable.streamSeq, false);
    // A readable lost copy in another chat, queued after it: its repair is the sign that a drain ran.
    const second = await chatWithTwoMessages();
    const readable = await injectCollision(second.chatId, second.head, 'rowan readable words');
    await eventually(async () => ((await queuedAt(readable.streamSeq)) === 1 ? true : undefined), 15_000, 'the readable copy queued');
    const gone = await counter('chat_seq_repairs_total', 'outcome="gone"');

    await messages.stop();
    messages = await startMessagesService(vars);
    await eventually(async () => ((await history(second.chatId)).some((m) => m.id === readable.event.data.messageId) ? true : undefined), 15_000, 'the readable copy repaired');
    await eventually(async () => ((await queuedAt(readable.streamSeq)) === 0 ? true : undefined), 5_000, 'its row gone');
    expect(await queuedAt(unreadable.streamSeq)).toBe(1);
    expect(await counter('chat_seq_repairs_total', 'outcome="gone"')).toBe(gone);

    // Long after the send, the next drain gives it up as gone.
    await db.query("UPDATE messages.seq_repairs SET queued_at = now() - interval '11 minutes' WHERE stream_seq = $1", [unreadable.streamSeq]);
    await eventually(async () => ((await queuedAt(unreadable.streamSeq)) === 0 ? true : undefined), 15_000, 'the unreadable row given up');
    expect(await counter('chat_seq_repairs_total', 'outcome="gone"')).toBe(gone + 1);
  });

  it('answers a resend within the duplicate window with the repaired copy, once the lost copy is deleted', async () => {
    // Every send straight to the writer, as on a connection past its resend check (the cluster
    // scenario's clients resent on connections that had been open for a while).
    await gateway.stop();
    gateway = await startGatewayService({ ...vars, WS_RESEND_CHECK_SENDS: '0' });
    try {
      const { chatId, head } = await chatWithTwoMessages();
      const lost = await injectCollision(chatId, head, 'loquat resent words');
      await eventually(async () => ((await history(chatId)).some((m) => m.id === lost.event.data.messageId) ? true : undefined), 15_000, 'the repair in history');
      await eventually(async () => ((await chatStream(chatId)).some((e) => e.streamSeq === lost.streamSeq) ? undefined : true), 15_000, 'the lost copy deleted');

      // JetStream answers the resend "duplicate" of the deleted copy (same message id, inside its window).
      const sender = await TestSocket.open(wsUrl(), bob.accessToken);
      sender.send({ op: 'send', chatId, clientMsgId: lost.event.data.clientMsgId, body: 'loquat resent words' });
      const ack = await sender.next((f) => (f.op === 'ack' || f.op === 'error') && (f.clientMsgId === lost.event.data.clientMsgId || f.ref === lost.event.data.clientMsgId), 10_000);
      sender.close();
      expect(ack).toMatchObject({ op: 'ack', messageId: lost.event.data.messageId, seq: head + 1 });
      const copies = (await chatStream(chatId)).filter((e) => e.event.data?.clientMsgId === lost.event.data.clientMsgId);
      expect(copies.map((e) => e.event.seq)).toEqual([head + 1]);
      expect((await history(chatId)).filter((m) => m.body === 'loquat resent words').map((m) => m.seq)).toEqual([head + 1]);
    } finally {
      await gateway.stop();
      gateway = await startGatewayService(vars);
    }
  });
});
