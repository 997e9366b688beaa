import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { createMetrics } from '@parley/telemetry';
import type { ChatEvent } from '@parley/contracts';
import { loadNativeUws } from '../uws.js';
import { ChatDelivery } from './delivery.js';
import type { Socket, SocketData, SocketHolder } from './registry.js';

/**
 * ChatDelivery against a real uWebSockets.js server: what a socket has per chat is kept with its
 * memberships (SocketData.chats) and, for chats it is not in, apart (SocketData.notIn); nothing
 * may arrive twice as a socket joins, leaves and joins again.
 */
describe('ChatDelivery', () => {
  const uWS = loadNativeUws();
  const delivery = new ChatDelivery(createMetrics('gateway-test'), 1024 * 1024);
  const waiting: ((socket: Socket) => void)[] = [];
  let app: TemplatedApp;
  let listen: us_listen_socket;
  let port = 0;

  beforeAll(async () => {
    app = uWS.App().ws<SocketHolder>('/*', {
      upgrade: (res, req, context) => {
        const state = { closed: false, chats: new Map(), notIn: null, held: null, outbox: null, outboxBytes: 0 } as unknown as SocketData;
        res.upgrade({ state }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
      },
      open: (socket) => waiting.shift()?.(socket),
      close: (socket) => {
        socket.getUserData().state.closed = true;
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
    await new Promise((resolve, reject) => {
      client.once('open', resolve);
      client.once('error', reject);
    });
    return { socket: await server, client, seqs };
  };

  const event = (chatId: string, seq: number): ChatEvent =>
    ({ type: 'MessageDeleted', chatId, seq, data: { messageId: `m${seq}` }, meta: { eventId: `e${seq}`, occurredAt: new Date(0).toISOString(), actorId: 'u' } }) as unknown as ChatEvent;

  /** Publishes a marker event to a chat of its own and waits for it: every frame sent before it has arrived. */
  let markers = 1_000_000;
  const settled = async (socket: Socket, seqs: number[]) => {
    const marker = ++markers;
    delivery.join(socket, 'marker');
    delivery.publish(event('marker', marker));
    while (seqs.at(-1) !== marker) await new Promise((resolve) => setTimeout(resolve, 5));
    seqs.pop();
  };

  it('a socket caught up before it joins does not get the caught-up events again live', async () => {
    const { socket, client, seqs } = await connect();
    // A catch-up sends 1..3 to a socket that is not in the chat yet.
    for (const seq of [1, 2, 3]) delivery.sendNow(socket, 'c1', seq, JSON.stringify({ seq }));
    expect(socket.getUserData().state.chats.has('c1')).toBe(false);
    delivery.join(socket, 'c1');
    // The live consumer is behind the catch-up: 2 and 3 arrive again, then 4 is new.
    for (const seq of [2, 3, 4]) delivery.publish(event('c1', seq));
    await settled(socket, seqs);
    expect(seqs).toEqual([1, 2, 3, 4]);
    expect(socket.getUserData().state.chats.get('c1')).toBe(4);
    expect(socket.getUserData().state.notIn).toBeNull();
    client.close();
  });

  it("a socket that left a chat gets none of its events twice: held ones, a resume's, after rejoining", async () => {
    const { socket, client, seqs } = await connect();
    delivery.join(socket, 'c2');
    delivery.publish(event('c2', 5));
    delivery.leave(socket, 'c2');
    expect(socket.getUserData().state.chats.has('c2')).toBe(false);
    // Live events no longer reach it; one held from before the removal, or a resume's, still may.
    delivery.publish(event('c2', 6));
    delivery.sendNow(socket, 'c2', 5, JSON.stringify({ seq: 5 }));
    delivery.sendNow(socket, 'c2', 6, JSON.stringify({ seq: 6 }));
    // Added again: the live feed repeats 6 (the resume already sent it), then 7 is new.
    delivery.join(socket, 'c2');
    delivery.publish(event('c2', 6));
    delivery.publish(event('c2', 7));
    await settled(socket, seqs);
    expect(seqs).toEqual([5, 6, 7]);
    expect(socket.getUserData().state.notIn).toBeNull();
    client.close();
  });
});
