import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { createMetrics } from '@parley/telemetry';
import type { ChatEvent } from '@parley/contracts';
import { loadNativeUws } from '../uws.js';
import { ChatDelivery } from './delivery.js';
import type { Socket, SocketData, SocketHolder } from './registry.js';

/**
 * ChatDelivery against a real uWebSockets.js server: what a socket has per chat is kept in one
 * map with its memberships (SocketData.chats), so what a socket got before it joined a chat (a
 * catch-up) must come in with the join.
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
        const state = { closed: false, chats: new Map(), held: null, outbox: null, outboxBytes: 0 } as unknown as SocketData;
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
  const settled = async (socket: Socket, seqs: number[]) => {
    delivery.join(socket, 'marker');
    delivery.publish(event('marker', 1_000_000));
    while (seqs.at(-1) !== 1_000_000) await new Promise((resolve) => setTimeout(resolve, 5));
    seqs.pop();
    delivery.leave(socket, 'marker');
  };

  it('a socket caught up before it joins does not get the caught-up events again live', async () => {
    const { socket, client, seqs } = await connect();
    // A catch-up sends 1..3 to a socket that is not in the chat yet: nothing is recorded then.
    for (const seq of [1, 2, 3]) delivery.sendNow(socket, 'c1', seq, JSON.stringify({ seq }));
    expect(socket.getUserData().state.chats.has('c1')).toBe(false);
    delivery.join(socket, 'c1', 3);
    // The live consumer is behind the catch-up: 2 and 3 arrive again, then 4 is new.
    for (const seq of [2, 3, 4]) delivery.publish(event('c1', seq));
    await settled(socket, seqs);
    expect(seqs).toEqual([1, 2, 3, 4]);
    expect(socket.getUserData().state.chats.get('c1')).toBe(4);
    client.close();
  });

  it('joining again never lowers what a socket has; leaving forgets the chat', async () => {
    const { socket, client, seqs } = await connect();
    delivery.join(socket, 'c2');
    delivery.publish(event('c2', 5));
    delivery.join(socket, 'c2', 2);
    delivery.publish(event('c2', 5));
    delivery.publish(event('c2', 6));
    await settled(socket, seqs);
    expect(seqs).toEqual([5, 6]);
    delivery.leave(socket, 'c2');
    expect(socket.getUserData().state.chats.has('c2')).toBe(false);
    delivery.publish(event('c2', 7));
    await settled(socket, seqs);
    expect(seqs).toEqual([5, 6]);
    client.close();
  });
});
