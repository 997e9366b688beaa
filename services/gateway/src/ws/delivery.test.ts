import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { Metrics } from '@parley/telemetry';
import { loadNativeUws } from '../uws.js';
import { CLOSE_SLOW_READER, ChatDelivery } from './delivery.js';
import type { Socket, SocketData } from './registry.js';

const LIMIT = 1024 * 1024;

/**
 * ChatDelivery against a real uWebSockets.js server: sockets move between the chat's topic (live)
 * and the per-socket path (tracked), and each still gets every event once and in order.
 */
describe('ChatDelivery: live and tracked sockets', () => {
  const uWS = loadNativeUws();
  const metrics = { websocketMessages: { inc: () => {} } } as unknown as Metrics;
  const waiting: ((socket: Socket) => void)[] = [];
  let app: TemplatedApp;
  let listen: us_listen_socket;
  let port = 0;
  let delivery: ChatDelivery;

  beforeAll(async () => {
    app = uWS.App();
    delivery = new ChatDelivery(metrics, LIMIT, {}, (topic, frame) => app.publish(topic, frame, false));
    app.ws<SocketData>('/*', {
      maxBackpressure: LIMIT * 2,
      closeOnBackpressureLimit: 1,
      upgrade: (res, req, context) => {
        const data = { closed: false, chats: new Set(), lastSeq: new Map(), live: new Set(), held: null, holdTimer: null, outbox: null, outboxBytes: 0 };
        res.upgrade(data as unknown as SocketData, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
      },
      open: (socket) => waiting.shift()?.(socket),
      close: (socket) => {
        socket.getUserData().closed = true;
        delivery.forget(socket);
      },
    });
    listen = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (token) => (token ? resolve(token) : reject(new Error('no port')))));
    port = uWS.us_socket_local_port(listen);
  });

  afterAll(() => {
    uWS.us_listen_socket_close(listen);
  });

  const connect = async () => {
    const server = new Promise<Socket>((resolve) => waiting.push(resolve));
    const client = new WebSocket(`ws://127.0.0.1:${port}/`);
    const seqs: number[] = [];
    client.on('message', (data) => seqs.push((JSON.parse(String(data)) as { seq: number }).seq));
    const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => {
      client.once('open', resolve);
      client.once('error', reject);
    });
    return { socket: await server, client, seqs, closed };
  };

  const until = async (check: () => boolean) => {
    while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  const event = (chatId: string, seq: number, body = '') =>
    ({ chatId, seq, type: 'MessageSent', meta: { occurredAt: new Date().toISOString() }, data: { messageId: `m${seq}`, senderId: 'u', clientMsgId: `c${seq}`, body, replyTo: null, attachmentIds: [] } }) as never;
  const upTo = (n: number, from = 1) => Array.from({ length: n - from + 1 }, (_, i) => from + i);

  it('publishes to live sockets once per event, and brings a late joiner in at the chat position', async () => {
    const a = await connect();
    const b = await connect();
    delivery.join(a.socket, 'c1');
    expect(a.socket.getUserData().live.has('c1')).toBe(true);
    for (let seq = 1; seq <= 50; seq++) delivery.publish(event('c1', seq));
    // b has seqs 1-50 from elsewhere (a resume read them): tracked until the chat is past them.
    b.socket.getUserData().lastSeq.set('c1', 52);
    delivery.join(b.socket, 'c1');
    expect(b.socket.getUserData().live.has('c1')).toBe(false);
    for (let seq = 51; seq <= 100; seq++) delivery.publish(event('c1', seq));
    expect(b.socket.getUserData().live.has('c1')).toBe(true);
    await until(() => a.seqs.length === 100 && b.seqs.length === 48);
    expect(a.seqs).toEqual(upTo(100));
    expect(b.seqs).toEqual(upTo(100, 53));
    a.client.close();
    b.client.close();
  });

  it('holds a live socket for a resume and gives it everything once, in order, then publishes to it again', async () => {
    const a = await connect();
    delivery.join(a.socket, 'c2');
    for (let seq = 1; seq <= 10; seq++) delivery.publish(event('c2', seq));
    // In the same turn as the last publishes: the hold must not lose them.
    delivery.hold(a.socket);
    expect(a.socket.getUserData().live.has('c2')).toBe(false);
    for (let seq = 11; seq <= 20; seq++) delivery.publish(event('c2', seq));
    // The resume sends seqs 8-23 it read from the stream (11-20 are held, 21-23 not published yet).
    for (let seq = 8; seq <= 23; seq++) delivery.sendNow(a.socket, 'c2', seq, JSON.stringify({ seq }));
    delivery.release(a.socket);
    expect(a.socket.getUserData().live.has('c2')).toBe(false);
    for (let seq = 21; seq <= 30; seq++) delivery.publish(event('c2', seq));
    expect(a.socket.getUserData().live.has('c2')).toBe(true);
    for (let seq = 31; seq <= 40; seq++) delivery.publish(event('c2', seq));
    await until(() => a.seqs.length >= 40);
    expect(a.seqs).toEqual(upTo(40));
    a.client.close();
  });

  it('gives a member who leaves the event published just before, and nothing after', async () => {
    const a = await connect();
    const b = await connect();
    delivery.join(a.socket, 'c3');
    delivery.join(b.socket, 'c3');
    delivery.publish(event('c3', 1));
    delivery.publish(event('c3', 2)); // the removal
    delivery.leave(b.socket, 'c3');
    delivery.publish(event('c3', 3));
    await until(() => a.seqs.length === 3);
    // a got seq 3 after b left; b's frames were written before it (same connection order per socket).
    await until(() => b.seqs.length >= 2);
    expect(a.seqs).toEqual([1, 2, 3]);
    expect(b.seqs).toEqual([1, 2]);
    a.client.close();
    b.client.close();
  });

  /** Publishes `size`-byte events to a live socket that stops reading, every `pause`, until it is closed; its close code. */
  const readerClosedAt = async (chatId: string, size: number, pause: () => Promise<unknown>) => {
    const reader = await connect();
    delivery.join(reader.socket, chatId);
    expect(reader.socket.getUserData().live.has(chatId)).toBe(true);
    (reader.client as unknown as { _socket: { pause(): void } })._socket.pause();
    const body = 'x'.repeat(size);
    let seq = 0;
    while (!reader.socket.getUserData().closed && seq < 5_000) {
      delivery.publish(event(chatId, ++seq, body));
      await pause();
    }
    expect(reader.socket.getUserData().closed).toBe(true);
    (reader.client as unknown as { _socket: { resume(): void } })._socket.resume();
    return reader.closed;
  };

  it('closes a live socket that stops reading with 4008, before uWebSockets.js drops a frame', async () => {
    // 64 KiB a turn: past uWebSockets.js's limit (twice ours) within 32 turns once the kernel's buffers are full.
    expect(await readerClosedAt('c4', 64 * 1024, () => new Promise((resolve) => setImmediate(resolve)))).toBe(CLOSE_SLOW_READER);
  });
});
