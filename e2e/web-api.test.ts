import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { Api, ChatCursors, RealtimeClient, memoryTokens, type ChatEvent, type SocketLike } from '../clients/web/src/api/index.js';
import { startStack, type Stack } from './stack.js';

/**
 * The web client's API module (clients/web/src/api) against a real gateway: resume cursors,
 * dedupe by chatId+seq, `reset`, and clientMsgId retries across a dropped connection. The
 * connection drops are real: the underlying socket is terminated without a close handshake.
 */
interface Harness {
  api: Api;
  rt: RealtimeClient;
  events: ChatEvent[];
  resets: string[];
  acks: { clientMsgId: string; messageId: string; seq: number }[];
  sockets: WebSocket[];
  /** Cuts the network under the client: no close frame, as when a cable is pulled. */
  drop(): void;
  /** Told of each socket the client opens, before it opens. */
  onSocket?: (ws: WebSocket) => void;
}

async function client(stack: Stack, name: string, token?: string): Promise<Harness> {
  const api = new Api(stack.baseUrl, memoryTokens());
  await api.register({ username: name, email: `${name}@example.test`, password: `pw-${name}-long-enough` });
  const h: Harness = {
    api,
    events: [],
    resets: [],
    acks: [],
    sockets: [],
    rt: undefined as unknown as RealtimeClient,
    drop: () => h.sockets.at(-1)!.terminate(),
  };
  h.rt = new RealtimeClient(
    stack.wsUrl,
    token ?? api.accessToken!,
    {
      onEvent: (e) => h.events.push(e),
      onReset: (chatId) => h.resets.push(chatId),
      onAck: (a) => h.acks.push(a),
      renewToken: async () => {
        await api.refresh();
        return api.signedIn ? api.accessToken : null;
      },
    },
    (url) => {
      const ws = new WebSocket(url);
      h.sockets.push(ws);
      h.onSocket?.(ws);
      return ws as unknown as SocketLike;
    },
  );
  return h;
}

const until = (what: string, probe: () => boolean, timeoutMs = 10_000) => eventually(async () => (probe() ? true : undefined), timeoutMs, what);
const bodies = (h: Harness, chatId: string) =>
  h.events.filter((e) => e.chatId === chatId && e.type === 'message.created').map((e) => (e.data as { body: string }).body);

describe('web client API module against a real gateway', () => {
  let stack: Stack;
  let alice: Harness;
  let bob: Harness;
  let chatId: string;
  let bobId: string;

  beforeAll(async () => {
    stack = await startStack({ WS_RESUME_MAX_EVENTS: '5' });
    alice = await client(stack, `wa_alice${Date.now() % 100000}`);
    bob = await client(stack, `wa_bob${Date.now() % 100000}`);
    const bobUser = await bob.api.me();
    bobId = bobUser.id;
    chatId = (await alice.api.openDirect(bobUser.id)).id;
    alice.rt.start();
    bob.rt.start();
    await until('both online', () => alice.rt.connectionStatus === 'online' && bob.rt.connectionStatus === 'online');
  });
  afterAll(async () => {
    alice?.rt.stop();
    bob?.rt.stop();
    await stack?.stop();
  });

  it('dedupes by chatId+seq and never lets read.updated move a cursor', () => {
    const cursors = new ChatCursors();
    expect(cursors.accept({ type: 'message.created', chatId: 'c', seq: 4 })).toBe('apply');
    expect(cursors.accept({ type: 'message.created', chatId: 'c', seq: 4 })).toBe('duplicate');
    expect(cursors.accept({ type: 'read.updated', chatId: 'c', seq: 9 })).toBe('apply');
    expect(cursors.accept({ type: 'reaction.added', chatId: 'c', seq: 5 })).toBe('apply');
    expect(cursors.accept({ type: 'message.created', chatId: 'c', seq: 7 })).toBe('gap');
    expect(cursors.snapshot()).toEqual({ c: 7 });
  });

  it('delivers live, then resumes after a drop with nothing lost or doubled', async () => {
    for (const body of ['one', 'two', 'three']) alice.rt.send({ chatId, clientMsgId: `live-${body}`, body });
    await until('bob got three', () => bodies(bob, chatId).length === 3);
    expect(bodies(bob, chatId)).toEqual(['one', 'two', 'three']);

    bob.drop();
    await until('bob offline', () => bob.rt.connectionStatus !== 'online');
    for (const body of ['four', 'five']) alice.rt.send({ chatId, clientMsgId: `gone-${body}`, body });
    await until('alice acked', () => alice.acks.length === 5);
    await until('bob resumed', () => bodies(bob, chatId).length === 5);
    expect(bodies(bob, chatId)).toEqual(['one', 'two', 'three', 'four', 'five']);
    const seqs = bob.events.filter((e) => e.chatId === chatId && e.type !== 'read.updated').map((e) => e.seq);
    expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
    expect(bob.resets).toEqual([]);
  });

  it('re-sends unacked messages after a reconnect with the same clientMsgId, once', async () => {
    alice.drop();
    await until('alice offline', () => alice.rt.connectionStatus !== 'online');
    alice.rt.send({ chatId, clientMsgId: 'offline-1', body: 'written offline' });
    expect(alice.rt.unacked.map((s) => s.clientMsgId)).toEqual(['offline-1']);
    await until('acked after reconnect', () => alice.acks.some((a) => a.clientMsgId === 'offline-1'));
    expect(alice.rt.unacked).toEqual([]);

    // The ack was lost (say): the same send again gets the original ack and no second message.
    const first = alice.acks.find((a) => a.clientMsgId === 'offline-1')!;
    alice.rt.send({ chatId, clientMsgId: 'offline-1', body: 'written offline' });
    await until('second ack', () => alice.acks.filter((a) => a.clientMsgId === 'offline-1').length === 2);
    expect(alice.acks.filter((a) => a.clientMsgId === 'offline-1')[1]).toEqual(first);
    await until('bob got it', () => bodies(bob, chatId).includes('written offline'));
    const page = await bob.api.messages(chatId);
    expect(page.items.filter((m) => m.body === 'written offline')).toHaveLength(1);
    expect(bodies(bob, chatId).filter((b) => b === 'written offline')).toHaveLength(1);
  });

  it('reports a reset when more was missed than a resume carries, and goes on live', async () => {
    bob.drop();
    await until('bob offline', () => bob.rt.connectionStatus !== 'online');
    for (let i = 0; i < 7; i++) alice.rt.send({ chatId, clientMsgId: `many-${i}`, body: `many ${i}` });
    await until('alice acked all', () => alice.acks.filter((a) => a.clientMsgId.startsWith('many-')).length === 7);
    await until('bob reset', () => bob.resets.includes(chatId));
    expect(bodies(bob, chatId).some((b) => b.startsWith('many'))).toBe(false);
    // The reload over HTTP has them; and live delivery continues.
    const page = await bob.api.messages(chatId);
    expect(page.items.filter((m) => m.body.startsWith('many'))).toHaveLength(7);
    alice.rt.send({ chatId, clientMsgId: 'after-reset', body: 'after reset' });
    await until('live again', () => bodies(bob, chatId).includes('after reset'));
  });

  it("tells the server only the newest of a turn's reads in a chat, and one made while offline once it has resumed", async () => {
    // A catch-up marks every message it brings in the open chat: one read frame each went past the
    // gateway's frame budget (a burst of 100), refused the newest, and closed the socket with 1008.
    const sent: { id: string; seq: number }[] = [];
    for (let i = 0; i < 130; i++) sent.push(await alice.api.postMessage(chatId, { clientMsgId: `read-${i}`, body: `to read ${i}` }));
    await until('bob has them', () => bodies(bob, chatId).includes('to read 129'));
    const socketsBefore = bob.sockets.length;
    for (const message of sent) bob.rt.read(chatId, message.id);
    const mine = async () => (await bob.api.reads(chatId)).items.find((r) => r.userId === bobId)?.seq ?? 0;
    await eventually(async () => ((await mine()) === sent.at(-1)!.seq ? true : undefined), 10_000, 'bob read up to the newest');
    // One connection throughout: nothing was refused, nothing closed it.
    expect(bob.sockets.length).toBe(socketsBefore);
    expect(bob.rt.connectionStatus).toBe('online');

    // Read while the connection is down: told once it is back (it was dropped).
    const later = await alice.api.postMessage(chatId, { clientMsgId: 'read-later', body: 'read while offline' });
    await until('bob has it', () => bodies(bob, chatId).includes('read while offline'));
    bob.drop();
    await until('bob offline', () => bob.rt.connectionStatus !== 'online');
    bob.rt.read(chatId, later.id);
    await eventually(async () => ((await mine()) === later.seq ? true : undefined), 15_000, 'the read made offline');
  });

  it('renews the open socket with a refreshed token (the gateway closes a socket whose token expired)', async () => {
    const dave = await client(stack, `wa_dave${Date.now() % 100000}`);
    dave.rt.start();
    try {
      await until('dave online', () => dave.rt.connectionStatus === 'online');
      const socket = dave.sockets.at(-1)!;
      const frames: { op: string; code?: string }[] = [];
      socket.on('message', (data) => frames.push(JSON.parse(String(data))));
      expect(await dave.api.refresh()).toBe(true);
      dave.rt.renew(dave.api.accessToken!);
      await until('the renewal answered', () => frames.some((f) => f.op === 'authenticated' || f.op === 'error'));
      expect(frames.filter((f) => f.op === 'authenticated' || f.op === 'error')).toEqual([{ op: 'authenticated', userId: (await dave.api.me()).id }]);
      // The same socket goes on.
      expect(dave.sockets).toHaveLength(1);
    } finally {
      dave.rt.stop();
    }
  });

  it('renews the access token when the gateway refuses it (an expired token after a long drop), and never puts a token in the URL', async () => {
    const carol = await client(stack, `wa_carol${Date.now() % 100000}`, 'not-a-valid-token');
    const sent: string[][] = [];
    carol.onSocket = (ws) => {
      const frames: string[] = [];
      sent.push(frames);
      const send = ws.send.bind(ws);
      ws.send = ((data: string) => (frames.push(JSON.parse(data).op === 'auth' ? JSON.parse(data).token : JSON.parse(data).op), send(data))) as typeof ws.send;
    };
    carol.rt.start();
    try {
      await until('carol online with a refreshed token', () => carol.rt.connectionStatus === 'online');
      expect(carol.sockets.length).toBeGreaterThanOrEqual(2);
      // The refused first attempt (4401) made the client refresh: the socket now runs on the new
      // token, given in its first frame; the URLs (which proxies log) carry none.
      expect(sent[0]![0]).toBe('not-a-valid-token');
      expect(sent.at(-1)!.slice(0, 2)).toEqual([carol.api.accessToken, 'resume']);
      for (const ws of carol.sockets) expect(new URL(ws.url).search).toBe('');
    } finally {
      carol.rt.stop();
    }
  });
});
