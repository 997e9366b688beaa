import pg from 'pg';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdLock } from './pg-lock.js';
import { eventually } from '@parley/testing';
import { subjects } from '@parley/contracts';
import { startGatewayService } from '../services/gateway/src/service.js';
import { metricSum } from './faults/harness/metrics.js';
import { http, natsRelay, register, startStack, TestSocket, type Account, type Stack } from './stack.js';

type Gateway = Awaited<ReturnType<typeof startGatewayService>>;
const urlsOf = (g: Gateway) => ({ baseUrl: `http://127.0.0.1:${g.port}`, wsUrl: `ws://127.0.0.1:${g.port}/ws` });

async function groupOf(stack: Pick<Stack, 'baseUrl'>, owner: Account, others: Account[], title = 'g'): Promise<string> {
  const answer = await http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'group', title, memberIds: others.map((o) => o.id) } });
  if (answer.status !== 201) throw new Error(`group: ${answer.status}`);
  return answer.body.id;
}

async function sendMany(socket: TestSocket, chatId: string, prefix: string, count: number): Promise<number[]> {
  for (let i = 0; i < count; i++) socket.send({ op: 'send', chatId, clientMsgId: `${prefix}-${i}`, body: `${prefix} ${i}` });
  const seqs: number[] = [];
  for (let i = 0; i < count; i++) seqs.push((await socket.next((f) => f.op === 'ack' && f.clientMsgId.startsWith(`${prefix}-`))).seq);
  return seqs;
}

describe('realtime: scale-out, resume, typing', () => {
  let stack: Stack;
  let g2: Gateway;
  let alice: Account;
  let bob: Account;
  let carol: Account;

  beforeAll(async () => {
    stack = await startStack({ WS_RESUME_MAX_EVENTS: '50' });
    g2 = await startGatewayService({ ...stack.vars, PORT: '0', METRICS_PORT: '0', WS_RESUME_MAX_EVENTS: '50' });
    [alice, bob, carol] = [await register(stack, 'rt_alice'), await register(stack, 'rt_bob'), await register(stack, 'rt_carol')];
  });
  afterAll(async () => {
    await g2?.stop();
    await stack?.stop();
  });

  it('delivers across gateways: a user on one gateway gets everything sent on the other', async () => {
    const chatId = await groupOf(stack, alice, [bob], 'across');
    const onG1 = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const onG2 = await TestSocket.open(urlsOf(g2).wsUrl, bob.accessToken);
    await Promise.all([onG1.sync(), onG2.sync()]);
    const seqs = await sendMany(onG1, chatId, 'x', 10);
    const got: number[] = [];
    while (got.length < 10) got.push((await onG2.next((f) => f.op === 'event' && f.chatId === chatId)).seq);
    expect(got).toEqual(seqs);
    onG1.close();
    onG2.close();
  });

  it('builds each send on the chat head it saw live, so senders on two gateways do not collide', async () => {
    const conflicts = async (port: number) => metricSum(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), 'bus_publishes_total', 'outcome="conflict"');
    const chatId = await groupOf(stack, alice, [bob], 'heads');
    const onG1 = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const onG2 = await TestSocket.open(urlsOf(g2).wsUrl, bob.accessToken);
    await Promise.all([onG1.sync(), onG2.sync()]);
    const before = (await conflicts(stack.metricsPorts.gateway)) + (await conflicts(g2.metricsPort));
    const seqs: number[] = [];
    for (let i = 0; i < 8; i++) {
      // Each side sends only after its gateway delivered the other's message: the head it knows
      // came from the live fan-out, not from its own last append.
      onG1.send({ op: 'send', chatId, clientMsgId: `h1-${i}`, body: `one ${i}` });
      seqs.push((await onG1.next((f) => f.op === 'ack' && f.clientMsgId === `h1-${i}`)).seq);
      await onG2.next((f) => f.op === 'event' && f.chatId === chatId && f.seq === seqs.at(-1));
      onG2.send({ op: 'send', chatId, clientMsgId: `h2-${i}`, body: `two ${i}` });
      seqs.push((await onG2.next((f) => f.op === 'ack' && f.clientMsgId === `h2-${i}`)).seq);
      await onG1.next((f) => f.op === 'event' && f.chatId === chatId && f.seq === seqs.at(-1));
    }
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    // Without the live heads every one of these sends after the first two would fail its
    // expected-sequence check once and re-read the head.
    expect((await conflicts(stack.metricsPorts.gateway)) + (await conflicts(g2.metricsPort)) - before).toBe(0);
    onG1.close();
    onG2.close();
  });

  it('carries a chat only to the gateways holding its members', async () => {
    const followed = async (port: number) => Number(/gateway_followed_chats\{[^}]*\} (\d+)/.exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1]);
    const loner = await register(stack, 'rt_loner');
    const chatId = await groupOf(stack, alice, [loner], 'only-g1');
    const onG1 = await TestSocket.open(stack.wsUrl, loner.accessToken);
    await onG1.sync();
    const g2Before = await followed(g2.metricsPort);
    // A second socket for a user of this chat on g2 makes g2 follow it; closing it makes g2 stop.
    const visitor = await TestSocket.open(urlsOf(g2).wsUrl, loner.accessToken);
    await visitor.sync();
    expect(await followed(g2.metricsPort)).toBe(g2Before + 1);
    visitor.close();
    await eventually(async () => ((await followed(g2.metricsPort)) === g2Before ? true : undefined));
    // Delivery keeps working for the socket on g1.
    const sender = await TestSocket.open(stack.wsUrl, alice.accessToken);
    sender.send({ op: 'send', chatId, clientMsgId: 'only', body: 'g1 only' });
    expect(await onG1.next((f) => f.type === 'message.created')).toMatchObject({ data: { body: 'g1 only' } });
    sender.close();
    onG1.close();
  });

  it('resumes from a cursor without gaps or duplicates while new messages keep arriving', async () => {
    const chatId = await groupOf(stack, alice, [bob], 'resume');
    const sender = await TestSocket.open(stack.wsUrl, alice.accessToken);
    await sendMany(sender, chatId, 'before', 5); // seqs 2..6
    // Bob was offline; he last saw seq 3. While his resume runs, Alice keeps sending.
    const bobSocket = await TestSocket.open(urlsOf(g2).wsUrl, bob.accessToken, { handshake: false });
    bobSocket.send({ op: 'resume', cursors: { [chatId]: 3 } });
    const during = sendMany(sender, chatId, 'during', 10);
    await bobSocket.next((f) => f.op === 'resumed');
    await during;
    const final = (await sendMany(sender, chatId, 'after', 1))[0]!;
    await eventually(async () => (bobSocket.frames.some((f) => f.op === 'event' && f.seq === final) ? true : undefined));
    const seen = bobSocket.frames.filter((f) => f.op === 'event' && f.chatId === chatId).map((f) => f.seq);
    expect(seen).toEqual(Array.from({ length: final - 3 }, (_, i) => i + 4));
    sender.close();
    bobSocket.close();
  });

  it('resumes across a gateway restart', async () => {
    const chatId = await groupOf(stack, alice, [carol], 'restart');
    let gateway = await startGatewayService({ ...stack.vars, PORT: '0', METRICS_PORT: '0' });
    const carolSocket = await TestSocket.open(urlsOf(gateway).wsUrl, carol.accessToken);
    const sender = await TestSocket.open(stack.wsUrl, alice.accessToken);
    await carolSocket.sync();
    await sendMany(sender, chatId, 'r1', 3);
    const lastSeen = (await carolSocket.next((f) => f.op === 'event' && f.seq === 4)).seq;
    await gateway.stop();
    expect((await carolSocket.waitClosed()).code).toBe(1001);
    await sendMany(sender, chatId, 'r2', 4); // seqs 5..8 while Carol's gateway is down
    gateway = await startGatewayService({ ...stack.vars, PORT: '0', METRICS_PORT: '0' });
    try {
      const again = await TestSocket.open(urlsOf(gateway).wsUrl, carol.accessToken, { handshake: false });
      again.send({ op: 'resume', cursors: { [chatId]: lastSeen } });
      await again.next((f) => f.op === 'resumed');
      expect(again.frames.filter((f) => f.op === 'event').map((f) => f.seq)).toEqual([5, 6, 7, 8]);
      again.close();
    } finally {
      await gateway.stop();
      sender.close();
    }
  });

  it('answers a cursor for a foreign chat with not_found and nothing else, and a stale cursor with reset', async () => {
    const hidden = await groupOf(stack, alice, [bob], 'hidden');
    const sender = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const sent = await sendMany(sender, hidden, 'h', 60);
    const carolSocket = await TestSocket.open(stack.wsUrl, carol.accessToken, { handshake: false });
    carolSocket.send({ op: 'resume', cursors: { [hidden]: 0 } });
    await carolSocket.next((f) => f.op === 'resumed');
    expect(carolSocket.frames.filter((f) => f.op === 'event')).toEqual([]);
    expect(carolSocket.frames.find((f) => f.op === 'error')).toMatchObject({ code: 'not_found', ref: hidden });
    // Bob is 60 events behind, more than WS_RESUME_MAX_EVENTS: reload history instead.
    const bobSocket = await TestSocket.open(stack.wsUrl, bob.accessToken, { handshake: false });
    bobSocket.send({ op: 'resume', cursors: { [hidden]: 1 } });
    await bobSocket.next((f) => f.op === 'resumed');
    // The reset names the seq live delivery continues after: the newest event of the chat.
    const head = sent.at(-1)!;
    expect(bobSocket.frames.filter((f) => f.op === 'reset')).toEqual([{ op: 'reset', chatId: hidden, seq: head }]);
    expect(bobSocket.frames.filter((f) => f.op === 'event')).toEqual([]);
    // History says which seq it reflects; once it reaches the reset's, it holds every message up to it.
    const page = await eventually(async () => {
      const answer = await http(stack, 'GET', `/api/v1/chats/${hidden}/messages?limit=100`, { token: bob.accessToken });
      return answer.status === 200 && answer.body.seq >= head ? answer.body : undefined;
    }, 10_000, 'history to reach the reset');
    expect(page.seq).toBe(head);
    expect(page.items.map((m: { seq: number }) => m.seq).reverse()).toEqual(sent);
    // Live delivery continues after a reset.
    const next = (await sendMany(sender, hidden, 'live', 1))[0];
    expect((await bobSocket.next((f) => f.op === 'event')).seq).toBe(next);
    for (const s of [sender, carolSocket, bobSocket]) s.close();
  });

  it('an inbox notice far behind the chat (a late reliable-path notice) resets to the head, and live delivery goes on', async () => {
    const chatId = await groupOf(stack, alice, [bob], 'late notice');
    const bobSocket = await TestSocket.open(stack.wsUrl, bob.accessToken);
    const sender = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const sent = await sendMany(sender, chatId, 'n', 60);
    // Generous waits: this asserts that delivery goes on, not how fast, and CI runs it beside every other file.
    while (bobSocket.frames.filter((f) => f.op === 'event' && f.chatId === chatId && f.type === 'message.created').length < 60) await bobSocket.next((f) => f.op === 'event', 15_000);
    // A notice for seq 1, more than WS_RESUME_MAX_EVENTS behind: the catch-up cannot be replayed.
    const nc = await stack.env.connectNats('late-notice');
    nc.publish(subjects.inbox(stack.env.namespace, bob.id), JSON.stringify({ chatId, seq: 1, userIds: [bob.id] }));
    await nc.flush();
    await nc.close();
    await bobSocket.sync();
    // Bob has everything up to the head: a reset, if any, names the head, never beyond it.
    expect(bobSocket.frames.filter((f) => f.op === 'reset' && f.seq > sent.at(-1)!)).toEqual([]);
    const next = (await sendMany(sender, chatId, 'after', 1))[0];
    expect((await bobSocket.next((f) => f.op === 'event' && f.chatId === chatId && f.seq === next, 15_000)).seq).toBe(next);
    for (const s of [sender, bobSocket]) s.close();
  }, 60_000);

  it('a notice for a socket that lacks a chat this gateway already follows replays the chat to it from the notice, once, in order', async () => {
    // What a member's socket looks like when its memberships answer predated the projection of
    // the chat: the chat is followed here for another member, and the notice comes late (a
    // projector that crashed before its reliable-path notice went out). The test plays the
    // messages service's part and publishes the notice itself.
    const chatId = await groupOf(stack, alice, [bob], 'late joiner');
    const sender = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const late = await TestSocket.open(stack.wsUrl, carol.accessToken);
    await Promise.all([sender.sync(), late.sync()]);
    const before = await sendMany(sender, chatId, 'lj', 5);
    const nc = await stack.env.connectNats('late-joiner');
    nc.publish(subjects.inbox(stack.env.namespace, carol.id), JSON.stringify({ chatId, seq: 1, userIds: [carol.id] }));
    await nc.flush();
    await nc.close();
    const after = (await sendMany(sender, chatId, 'lj-after', 1))[0]!;
    const seqs: number[] = [];
    while (seqs.at(-1) !== after) seqs.push((await late.next((f) => f.op === 'event' && f.chatId === chatId, 15_000)).seq);
    expect(seqs).toEqual([1, ...before, after]);
    for (const s of [sender, late]) s.close();
  });

  it('answers a resume from below an event the socket already got live with reset, not a silent hole', async () => {
    // A resume after the hold ended (its grace passed, or, as here, a frame other than resume came
    // first) finds the socket already past the cursor. Before, the events in between were skipped
    // as sent: the client never got them, and no reset told it to reload them.
    const chatId = await groupOf(stack, alice, [bob], 'late resume');
    const a = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const [cursor] = await sendMany(a, chatId, 'had', 1);
    await sendMany(a, chatId, 'missed', 3);
    const b = await TestSocket.open(stack.wsUrl, bob.accessToken);
    const [live] = await sendMany(a, chatId, 'live', 1);
    await b.next((f) => f.op === 'event' && f.chatId === chatId && f.seq === live);
    b.send({ op: 'resume', cursors: { [chatId]: cursor } });
    await b.next((f) => f.op === 'resumed');
    expect(b.frames.filter((f) => f.chatId === chatId && (f.op === 'event' || f.op === 'reset'))).toEqual([{ op: 'reset', chatId, seq: live }]);
    b.frames.length = 0;
    // A second resume from the same cursor is the same hole: reset again.
    b.send({ op: 'resume', cursors: { [chatId]: cursor } });
    expect(await b.next((f) => f.op === 'reset' || f.op === 'resumed')).toEqual({ op: 'reset', chatId, seq: live });
    await b.next((f) => f.op === 'resumed');
    // One from what the socket has goes on without a reset.
    b.send({ op: 'resume', cursors: { [chatId]: live! } });
    expect(await b.next((f) => f.op === 'reset' || f.op === 'resumed')).toEqual({ op: 'resumed' });
    a.close();
    b.close();
  });

  it('a resume that fails resets a chat whose held live events would start above the cursor', async () => {
    // The held live events were released when a resume failed, whatever it had not done: the
    // chat's events between the cursor and them were never sent, and a retry from the cursor
    // skipped them as sent. Here the stream read fails (the gateway is cut off from NATS).
    const relay = await natsRelay(new URL(stack.vars.NATS_URL!));
    const g3 = await startGatewayService({ ...stack.vars, NATS_URL: relay.url, PORT: '0', METRICS_PORT: '0', WS_RESUME_GRACE_MS: '60000' });
    const url = `ws://127.0.0.1:${g3.port}/ws`;
    const chatId = await groupOf(stack, alice, [bob, carol], 'failed resume');
    const a = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const c = await TestSocket.open(url, carol.accessToken);
    let b: TestSocket | undefined;
    try {
      const [cursor] = await sendMany(a, chatId, 'had', 1);
      await sendMany(a, chatId, 'missed', 3);
      // Bob's socket sends nothing yet: live events are held for its resume. Set up once carol
      // hears that he is online (announced after his socket joined its chats).
      b = await TestSocket.open(url, bob.accessToken, { handshake: false });
      await c.next((f) => f.op === 'presence' && f.userId === bob.id && f.online === true);
      const [live] = await sendMany(a, chatId, 'live', 1);
      // Carol's socket on the same gateway has it: so is it held for Bob's.
      await c.next((f) => f.op === 'event' && f.chatId === chatId && f.seq === live);
      relay.cut();
      b.send({ op: 'resume', cursors: { [chatId]: cursor } });
      expect(await b.next((f) => f.op === 'error', 30_000)).toMatchObject({ code: 'unavailable' });
      expect(b.frames.filter((f) => f.chatId === chatId && (f.op === 'event' || f.op === 'reset'))).toEqual([{ op: 'reset', chatId, seq: live }]);
    } finally {
      relay.restore();
      a.close();
      c.close();
      b?.close();
      await g3.stop();
      await relay.close();
    }
  }, 60_000);

  it('rejects malformed resume frames and keeps the socket', async () => {
    const s = await TestSocket.open(stack.wsUrl, alice.accessToken);
    s.send({ op: 'resume', cursors: { 'not-a-chat': 1 } });
    expect(await s.next((f) => f.op === 'error')).toMatchObject({ code: 'invalid_request' });
    s.send({ op: 'resume', cursors: [] });
    expect(await s.next((f) => f.op === 'error')).toMatchObject({ code: 'invalid_request' });
    await s.sync();
    s.close();
  });

  it('refuses a send under a poll\'s clientMsgId, and resets a resume cursor past the chat\'s newest event to it', async () => {
    const chatId = await groupOf(stack, alice, [bob], 'reserved ids');
    const a = await TestSocket.open(stack.wsUrl, alice.accessToken);
    // `poll-<pollId>` is how a poll is stored: acked, the send was refused by history as the poll's own.
    const poll = await http(stack, 'POST', `/api/v1/chats/${chatId}/polls`, { token: alice.accessToken, body: { question: 'Tea?', options: ['Yes', 'No'] } });
    expect(poll.status).toBe(201);
    a.send({ op: 'send', chatId, clientMsgId: `poll-${poll.body.poll.id}`, body: 'not a poll' });
    expect(await a.next((f) => f.op === 'error')).toMatchObject({ code: 'invalid_request' });
    const overHttp = await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: alice.accessToken, body: { clientMsgId: `poll-${poll.body.poll.id}`, body: 'not a poll' } });
    expect(overHttp.status).toBe(400);
    expect(overHttp.body.error.code).toBe('invalid_request');

    const head = (await sendMany(a, chatId, 'head', 2)).at(-1)!;
    const b = await TestSocket.open(stack.wsUrl, bob.accessToken, { handshake: false });
    b.send({ op: 'resume', cursors: { [chatId]: head + 1000 } });
    expect(await b.next((f) => f.op === 'reset' && f.chatId === chatId)).toEqual({ op: 'reset', chatId, seq: head });
    await b.next((f) => f.op === 'resumed');
    // Live delivery goes on after the newest event (it went silent up to the cursor before).
    const next = (await sendMany(a, chatId, 'after-head', 1))[0]!;
    expect((await b.next((f) => f.op === 'event' && f.chatId === chatId)).seq).toBe(next);
    for (const s of [a, b]) s.close();
  });

  it('relays typing to the other members only, at most once a second per user and chat', async () => {
    const chatId = await groupOf(stack, alice, [bob, carol], 'typing');
    const a = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const b = await TestSocket.open(urlsOf(g2).wsUrl, bob.accessToken);
    const c = await TestSocket.open(stack.wsUrl, carol.accessToken);
    await Promise.all([a.sync(), b.sync(), c.sync()]);
    a.send({ op: 'typing', chatId });
    a.send({ op: 'typing', chatId });
    a.send({ op: 'typing', chatId });
    expect(await b.next((f) => f.op === 'typing')).toEqual({ op: 'typing', chatId, userId: alice.id });
    expect(await c.next((f) => f.op === 'typing')).toEqual({ op: 'typing', chatId, userId: alice.id });
    await new Promise((r) => setTimeout(r, 300));
    expect(b.frames.filter((f) => f.op === 'typing')).toEqual([]);
    expect(a.frames.filter((f) => f.op === 'typing')).toEqual([]);
    // A message ends the typing; the next notice, within the second, is relayed at once.
    await sendMany(a, chatId, 'typed', 1);
    a.send({ op: 'typing', chatId });
    expect(await b.next((f) => f.op === 'typing')).toEqual({ op: 'typing', chatId, userId: alice.id });
    const outsider = await register(stack, 'rt_out');
    const o = await TestSocket.open(stack.wsUrl, outsider.accessToken);
    o.send({ op: 'typing', chatId });
    expect(await o.next((f) => f.op === 'error')).toMatchObject({ code: 'not_found' });
    await new Promise((r) => setTimeout(r, 200));
    expect(b.frames.filter((f) => f.op === 'typing')).toEqual([]);
    for (const s of [a, b, c, o]) s.close();
  });
});

describe('holding live events for a resume that waits on the services', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({ WS_RESUME_GRACE_MS: '100' });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('keeps them held past the grace when the resume came in time, so the resume misses nothing', async () => {
    const [alice, bob] = [await register(stack, 'hold_alice'), await register(stack, 'hold_bob')];
    const chatId = await groupOf(stack, alice, [bob], 'hold');
    const sender = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const before = await sendMany(sender, chatId, 'before', 3); // seqs 2..4
    // Bob's socket gets ready only up to its presence snapshot, which reads users.blocks: with the
    // table locked it waits (up to the snapshot's 1 s timeout), Bob already in the chat and his
    // resume, sent at once, queued behind it. (In the fault suite the same wait was a messages
    // service restarting under the memberships lookup.)
    const lock = await holdLock(stack.env.databaseUrl, 'LOCK TABLE users.blocks IN ACCESS EXCLUSIVE MODE');
    const watch = new pg.Client({ connectionString: stack.env.databaseUrl });
    await watch.connect();
    let bobSocket: TestSocket | undefined;
    try {
      bobSocket = await TestSocket.open(stack.wsUrl, bob.accessToken, { handshake: false });
      bobSocket.send({ op: 'resume', cursors: { [chatId]: 1 } });
      await eventually(async () => {
        const { rows } = await watch.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%candidates AS%'",
        );
        return rows[0]!.n > 0 ? true : undefined;
      }, 5_000, 'the presence snapshot waiting on the lock');
      await new Promise((resolve) => setTimeout(resolve, 300)); // past the 100 ms grace
      const [during] = await sendMany(sender, chatId, 'during', 1);
      // Released at once (the old behaviour), this event went out before the resume, which then
      // skipped seqs 2..4 as already sent.
      await lock.release();
      await bobSocket.next((f) => f.op === 'resumed');
      await eventually(async () => (bobSocket!.frames.some((f) => f.op === 'event' && f.seq === during) ? true : undefined));
      const seen = bobSocket.frames.filter((f) => f.op === 'event' && f.chatId === chatId && f.type === 'message.created').map((f) => f.seq);
      // Every message once, in arrival order: the live one after those the resume sent.
      expect(seen).toEqual([...before, during]);
    } finally {
      await Promise.all([lock.end(), watch.end()]);
      bobSocket?.close();
      sender.close();
    }
  });
});

describe('realtime limits', () => {
  let stack: Stack;
  let slowStack: Stack;
  beforeAll(async () => {
    stack = await startStack({ WS_FRAME_RATE: '20', WS_FRAME_BURST: '20', WS_ALLOWED_ORIGINS: 'https://app.parley.test' });
    slowStack = await startStack({ WS_MAX_BUFFERED_BYTES: '65536', WS_FRAME_RATE: '100000', WS_FRAME_BURST: '100000' });
  });
  afterAll(async () => {
    await stack?.stop();
    await slowStack?.stop();
  });

  it('answers a flood with rate_limited errors, then closes it with 1008', async () => {
    const a = await register(stack, 'flooder');
    const s = await TestSocket.open(stack.wsUrl, a.accessToken);
    for (let i = 0; i < 200; i++) s.send({ op: 'ping' });
    const closed = await s.waitClosed();
    expect(closed.code).toBe(1008);
    expect(s.frames.filter((f) => f.op === 'error' && f.code === 'rate_limited').length).toBeGreaterThan(0);
  });

  it('closes a socket that never reads instead of buffering without bound', async () => {
    const reader = await register(slowStack, 'slowreader');
    const writer = await register(slowStack, 'fastwriter');
    const chatId = await groupOf(slowStack, writer, [reader], 'slow');
    const slow = new WebSocket(`${slowStack.wsUrl}?token=${reader.accessToken}`);
    await new Promise((resolve) => slow.once('open', resolve));
    const closed = new Promise<number>((resolve) => slow.once('close', (code) => resolve(code)));
    slow.send(JSON.stringify({ op: 'ping' }));
    await new Promise((r) => setTimeout(r, 100));
    // Stop reading: the kernel buffers fill, then the gateway's buffer for this socket grows.
    (slow as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const fast = await TestSocket.open(slowStack.wsUrl, writer.accessToken);
    const body = 'x'.repeat(3500);
    const metricsUrl = `http://127.0.0.1:${slowStack.metricsPorts.gateway}/metrics`;
    const open = async () => Number(/websocket_connections_total\{[^}]*\} (\d+)/.exec(await (await fetch(metricsUrl)).text())?.[1]);
    expect(await open()).toBe(2);
    let batches = 0;
    // Loopback kernel buffers absorb several MiB before the gateway's own buffer starts to grow.
    while ((await open()) === 2 && batches < 400) {
      for (let i = 0; i < 30; i++) fast.send({ op: 'send', chatId, clientMsgId: `b${batches}-${i}`, body });
      for (let i = 0; i < 30; i++) await fast.next((f) => f.op === 'ack');
      fast.frames.length = 0; // the writer's own copies of the events: not needed here
      batches += 1;
    }
    expect(await open()).toBe(1);
    (slow as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await closed).toBe(4008);
    fast.close();
  });

  it('refuses a browser origin that is not allowed', async () => {
    const a = await register(stack, 'origin');
    const refused = new WebSocket(`${stack.wsUrl}?token=${a.accessToken}`, { headers: { origin: 'https://evil.test' } });
    const status = await new Promise<number>((resolve) => refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    expect(status).toBe(403);
    const allowed = new WebSocket(`${stack.wsUrl}?token=${a.accessToken}`, { headers: { origin: 'https://app.parley.test' } });
    await new Promise((resolve, reject) => {
      allowed.once('open', resolve);
      allowed.once('error', reject);
    });
    allowed.close();
  });
});

describe('presence and live profile changes', () => {
  let stack: Stack;
  let g2: Gateway;
  beforeAll(async () => {
    stack = await startStack();
    g2 = await startGatewayService({ ...stack.vars, PORT: '0', METRICS_PORT: '0' });
  });
  afterAll(async () => {
    await g2?.stop();
    await stack?.stop();
  });

  it('tells chat peers and contacts when a user comes online and goes offline, counting devices across gateways once', async () => {
    const [ann, peer, fan] = [await register(stack, 'pr_ann'), await register(stack, 'pr_peer'), await register(stack, 'pr_fan')];
    await groupOf(stack, ann, [peer], 'presence');
    // fan has ann as a contact (no shared chat).
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: fan.accessToken, body: { userId: ann.id } })).status).toBe(201);
    const peerSocket = await TestSocket.open(urlsOf(g2).wsUrl, peer.accessToken);
    const fanSocket = await TestSocket.open(stack.wsUrl, fan.accessToken);
    await Promise.all([peerSocket.sync(), fanSocket.sync()]);

    const phone = await TestSocket.open(stack.wsUrl, ann.accessToken);
    expect(await peerSocket.next((f) => f.op === 'presence')).toEqual({ op: 'presence', userId: ann.id, online: true });
    expect(await fanSocket.next((f) => f.op === 'presence')).toEqual({ op: 'presence', userId: ann.id, online: true });
    const laptop = await TestSocket.open(urlsOf(g2).wsUrl, ann.accessToken);
    await laptop.sync();
    const metrics = async (port: number) => Number(/active_users\{[^}]*\} (\d+)/.exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1]);
    // Two devices on two gateways, plus peer and fan: three distinct users, on both gateways' gauges.
    await eventually(async () => ((await metrics(stack.metricsPorts.gateway)) === 3 ? true : undefined), 20_000);
    phone.close();
    await new Promise((r) => setTimeout(r, 300));
    // Still online on the laptop: no offline notice.
    expect(peerSocket.frames.filter((f) => f.op === 'presence')).toEqual([]);
    const closedAt = Date.now();
    laptop.close();
    // Offline everywhere now: the notice says since when (last seen), the same to every watcher.
    const offline = await peerSocket.next((f) => f.op === 'presence');
    expect(offline).toEqual({ op: 'presence', userId: ann.id, online: false, lastSeen: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) });
    expect(Math.abs(Date.parse(offline.lastSeen) - closedAt)).toBeLessThan(3_000);
    expect(await fanSocket.next((f) => f.op === 'presence' && !f.online)).toEqual(offline);
    peerSocket.close();
    fanSocket.close();
  }, 30_000);

  it('announces a user who left one gateway and comes back on another at once (the key left behind is gone, not marked deleted)', async () => {
    const [ann, peer] = [await register(stack, 'pb_ann'), await register(stack, 'pb_peer')];
    await groupOf(stack, ann, [peer], 'back again');
    const peerSocket = await TestSocket.open(urlsOf(g2).wsUrl, peer.accessToken);
    await peerSocket.sync();
    const phone = await TestSocket.open(stack.wsUrl, ann.accessToken);
    expect(await peerSocket.next((f) => f.op === 'presence')).toEqual({ op: 'presence', userId: ann.id, online: true });
    phone.close();
    expect(await peerSocket.next((f) => f.op === 'presence')).toMatchObject({ userId: ann.id, online: false });
    // Well within the bucket's 30 s TTL: a delete marker of the first gateway's key would still be
    // counted as a key there, and this return would never be announced.
    const laptop = await TestSocket.open(urlsOf(g2).wsUrl, ann.accessToken);
    expect(await peerSocket.next((f) => f.op === 'presence')).toEqual({ op: 'presence', userId: ann.id, online: true });
    laptop.close();
    expect(await peerSocket.next((f) => f.op === 'presence')).toMatchObject({ userId: ann.id, online: false });
    peerSocket.close();
  }, 30_000);

  it('shows a socket who is online as it connects, and since when those offline were last seen, by the same rules as the notices', async () => {
    const [ann, peer, fan, stranger] = [await register(stack, 'ps_ann'), await register(stack, 'ps_peer'), await register(stack, 'ps_fan'), await register(stack, 'ps_stranger')];
    await groupOf(stack, ann, [peer], 'snapshot');
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: fan.accessToken, body: { userId: ann.id } })).status).toBe(201);
    // Ann is online first, on the other gateway.
    const phone = await TestSocket.open(urlsOf(g2).wsUrl, ann.accessToken);
    const presenceOf = async (account: Account) => {
      // The snapshot comes before the socket's first pong (TestSocket.open waits for one). Ann's own
      // live notice may cross it and say the same once more (protocol.md): compared as a set.
      const socket = await TestSocket.open(stack.wsUrl, account.accessToken);
      const frames = [...new Set(socket.frames.filter((f) => f.op === 'presence').map((f) => JSON.stringify(f)))].map((f) => JSON.parse(f));
      socket.close();
      return frames;
    };
    const annOnline = [{ op: 'presence', userId: ann.id, online: true }];
    // This gateway learns that she came online from the other's notice, which may still be on its
    // way when the next socket is set up (that socket would get it live, after its first pong).
    expect(await eventually(async () => {
      const frames = await presenceOf(peer);
      return frames.length > 0 ? frames : undefined;
    }, 10_000, 'ann online in snapshots')).toEqual(annOnline);
    expect(await presenceOf(fan)).toEqual(annOnline);
    expect(await presenceOf(stranger)).toEqual([]);
    // Ann shows her presence to mutual contacts only: fan's one-sided contact no longer sees it, a
    // chat peer still does.
    expect((await http(stack, 'PATCH', '/api/v1/users/me/privacy', { token: ann.accessToken, body: { presence: 'contacts' } })).status).toBe(200);
    expect(await presenceOf(fan)).toEqual([]);
    expect(await presenceOf(peer)).toEqual(annOnline);
    // Gone: nobody is shown her online any more; whoever may see her presence is shown her last seen.
    const closedAt = Date.now();
    phone.close();
    const [offline] = await eventually(async () => {
      const frames = await presenceOf(peer);
      return frames.length === 1 && frames[0].online === false ? frames : undefined;
    }, 10_000, 'ann offline in snapshots');
    expect(offline).toEqual({ op: 'presence', userId: ann.id, online: false, lastSeen: expect.any(String) });
    expect(Math.abs(Date.parse(offline.lastSeen) - closedAt)).toBeLessThan(3_000);
    // Fan (a one-sided contact under `contacts`) may not see it, and a stranger never could. Fan's
    // positive signal: a contact of his own whose presence he may see, offline, in the same snapshot.
    const friend = await register(stack, 'ps_friend');
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: fan.accessToken, body: { userId: friend.id } })).status).toBe(201);
    (await TestSocket.open(stack.wsUrl, friend.accessToken)).close();
    const fanSees = await eventually(async () => {
      const frames = await presenceOf(fan);
      return frames.filter((f) => f.userId === friend.id).at(-1)?.online === false ? frames : undefined;
    }, 10_000, 'friend offline in fan\'s snapshot');
    // Friend's own live notices may cross the snapshot (online, then offline): the last one counts.
    expect(fanSees.filter((f) => f.userId !== friend.id)).toEqual([]);
    expect(fanSees.filter((f) => f.userId === friend.id).at(-1)).toEqual({ op: 'presence', userId: friend.id, online: false, lastSeen: expect.any(String) });
    expect(await presenceOf(stranger)).toEqual([]);
  }, 30_000);

  // Profile frames follow the presence audience, so they share its two-gateway stack.
  it('tells chat peers, contacts and the user\'s other devices, on every gateway, with the public profile only; never a blocked user; a failed or empty PATCH tells no one', async () => {
    const [ann, peer, fan, shunned] = [await register(stack, 'lp_ann'), await register(stack, 'lp_peer'), await register(stack, 'lp_fan'), await register(stack, 'lp_shunned')];
    await groupOf(stack, ann, [peer, shunned], 'profiles');
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: fan.accessToken, body: { userId: ann.id } })).status).toBe(201);
    expect((await http(stack, 'POST', '/api/v1/users/me/blocks', { token: ann.accessToken, body: { userId: shunned.id } })).status).toBe(201);
    // peer and ann's laptop on the second gateway; fan, the blocked chat peer and ann's phone on the first.
    const peerSocket = await TestSocket.open(urlsOf(g2).wsUrl, peer.accessToken);
    const laptop = await TestSocket.open(urlsOf(g2).wsUrl, ann.accessToken);
    const [fanSocket, shunnedSocket, phone] = await Promise.all([fan, shunned, ann].map((a) => TestSocket.open(stack.wsUrl, a.accessToken)));
    const fromAnn = (f: { op: string; user?: { id: string } }) => f.op === 'profile' && f.user?.id === ann.id;

    const patched = await http(stack, 'PATCH', '/api/v1/users/me', { token: ann.accessToken, body: { displayName: 'Ann Live', bio: 'new bio' } });
    expect(patched.status).toBe(200);
    expect(patched.body.email).toBe('lp_ann@example.test');
    // Exactly what anyone signed in reads with GET /users/:id: no e-mail, nothing more.
    const seen = (await http(stack, 'GET', `/api/v1/users/${ann.id}`, { token: peer.accessToken })).body;
    expect(seen).toMatchObject({ id: ann.id, username: 'lp_ann', displayName: 'Ann Live', bio: 'new bio', avatarUrl: null });
    const frame = { op: 'profile', user: seen };
    for (const socket of [peerSocket, fanSocket!, laptop, phone!]) {
      const got = await socket.next(fromAnn);
      expect(got).toEqual(frame);
      expect(JSON.stringify(got)).not.toContain('example.test');
    }
    // One notice reaches every socket of a gateway in one pass: fanSocket has it, so the blocked
    // peer on the same gateway would have too. A round trip makes sure nothing is still in flight.
    await shunnedSocket!.sync();
    expect(shunnedSocket!.frames.filter(fromAnn)).toEqual([]);

    // A refused PATCH and one that changes nothing tell no one: the next frame peer gets is the
    // next real change's.
    expect((await http(stack, 'PATCH', '/api/v1/users/me', { token: ann.accessToken, body: { displayName: '' } })).status).toBe(400);
    expect((await http(stack, 'PATCH', '/api/v1/users/me', { token: ann.accessToken, body: { displayName: 'Ann Live' } })).status).toBe(200);
    expect((await http(stack, 'PATCH', '/api/v1/users/me', { token: ann.accessToken, body: { avatarUrl: 'https://img.example/ann.png' } })).status).toBe(200);
    expect((await peerSocket.next(fromAnn)).user).toMatchObject({ displayName: 'Ann Live', avatarUrl: 'https://img.example/ann.png' });
    await peerSocket.sync();
    expect(peerSocket.frames.filter(fromAnn)).toEqual([]);

    const counted = metricSum(await (await fetch(`http://127.0.0.1:${stack.metricsPorts.gateway}/metrics`)).text(), 'websocket_messages_total', 'op="profile"');
    expect(counted).toBeGreaterThanOrEqual(2);
    for (const s of [peerSocket, laptop, fanSocket!, shunnedSocket!, phone!]) s.close();
  }, 30_000);
});

describe('graceful shutdown of a gateway', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.stop());

  it('acks the sends already in flight, then tells clients to reconnect with 1001', async () => {
    const [a, b] = [await register(stack, 'gs_a'), await register(stack, 'gs_b')];
    const chatId = await groupOf(stack, a, [b], 'shutdown');
    const gateway = await startGatewayService({ ...stack.vars, PORT: '0', METRICS_PORT: '0' });
    const socket = await TestSocket.open(urlsOf(gateway).wsUrl, a.accessToken);
    await socket.sync();
    for (let i = 0; i < 20; i++) socket.send({ op: 'send', chatId, clientMsgId: `gs${i}`, body: `in flight ${i}` });
    // Give the frames time to arrive, not to be handled: the stop below races their handling.
    await new Promise((r) => setTimeout(r, 20));
    await gateway.stop();
    const closed = await socket.waitClosed();
    expect(closed.code).toBe(1001);
    const acked = socket.frames.filter((f) => f.op === 'ack').map((f) => f.clientMsgId);
    const refused = socket.frames.filter((f) => f.op === 'error').map((f) => f.ref);
    // Every frame got an answer: an ack (stored) or an error telling the client to resend.
    expect([...acked, ...refused].sort()).toEqual(Array.from({ length: 20 }, (_, i) => `gs${i}`).sort());
    const history = await eventually(async () => {
      const page = await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: b.accessToken });
      return page.body.items.length === acked.length ? page : undefined;
    });
    expect(history.body.items.map((m: { body: string }) => m.body).sort()).toEqual(acked.map((id) => `in flight ${id.slice(2)}`).sort());
  });
});
