import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { loadNativeUws } from '../uws.js';
import { Outbox } from './outbox.js';
import type { Socket, SocketData, SocketHolder } from './registry.js';

/** A real uWebSockets.js server whose sockets are handed to the test as they open. */
describe('Outbox', () => {
  const uWS = loadNativeUws();
  const outbox = new Outbox();
  const opened: Socket[] = [];
  const waiting: ((socket: Socket) => void)[] = [];
  let app: TemplatedApp;
  let listen: us_listen_socket;
  let port = 0;

  beforeAll(async () => {
    app = uWS.App().ws<SocketHolder>('/*', {
      upgrade: (res, req, context) => {
        res.upgrade({ state: { closed: false, outbox: null, outboxBytes: 0 } as unknown as SocketData }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
      },
      open: (socket) => {
        const next = waiting.shift();
        if (next) next(socket);
        else opened.push(socket);
      },
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

  /** Connects a client; resolves with both ends once the server has the socket. */
  const connect = async () => {
    const server = new Promise<Socket>((resolve) => waiting.push(resolve));
    const client = new WebSocket(`ws://127.0.0.1:${port}/`);
    const frames: string[] = [];
    client.on('message', (data) => frames.push(String(data)));
    const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => {
      client.once('open', resolve);
      client.once('error', reject);
    });
    return { socket: await server, client, frames, closed };
  };

  const until = async (check: () => boolean) => {
    while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
  };

  it('sends every frame, in the order given, across event-loop turns', async () => {
    const { socket, client, frames } = await connect();
    for (let i = 0; i < 100; i++) outbox.send(socket, `a${i}`);
    expect(outbox.buffered(socket)).toBeGreaterThanOrEqual(100 * 2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(socket.getUserData().state.outboxBytes).toBe(0);
    outbox.send(socket, 'b');
    await until(() => frames.length === 101);
    expect(frames).toEqual([...Array.from({ length: 100 }, (_, i) => `a${i}`), 'b']);
    client.close();
  });

  it('sends a turn of frames past the cork buffer whole and in order, big and multi-byte ones among them', async () => {
    const { socket, client, frames } = await connect();
    // Groups split at 16 KiB of UTF-8: 'я' is two bytes, so a group of them splits by bytes, not characters.
    const sent = ['a', 'b'.repeat(10_000), 'я'.repeat(5_000), 'c'.repeat(20_000), 'd', 'e'.repeat(40_000), 'я'.repeat(9_000), 'f'];
    for (const frame of sent) outbox.send(socket, frame);
    await until(() => frames.length === sent.length);
    expect(frames).toEqual(sent);
    client.close();
  });

  it('sends what waits before closing, with the close code', async () => {
    const { socket, frames, closed } = await connect();
    outbox.send(socket, 'first');
    outbox.send(socket, 'last');
    outbox.end(socket, 4008, 'slow');
    expect(await closed).toBe(4008);
    expect(frames).toEqual(['first', 'last']);
  });

  it('drops what waits for a socket closed before the turn ended, and still flushes the others', async () => {
    const a = await connect();
    const b = await connect();
    outbox.send(a.socket, 'lost');
    outbox.send(b.socket, 'kept');
    // uWebSockets.js closes at once and runs the close handler; a send on it now would throw.
    a.socket.close();
    expect(a.socket.getUserData().state.closed).toBe(true);
    await until(() => b.frames.length === 1);
    expect(b.frames).toEqual(['kept']);
    await a.closed;
    expect(a.frames).toEqual([]);
    b.client.close();
  });
});
