import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outbox } from './outbox.js';
import { socketServer } from './socket-server.test-helper.js';

/** A real uWebSockets.js server whose sockets are handed to the test as they open. */
describe('Outbox', () => {
  const outbox = new Outbox();
  let server: Awaited<ReturnType<typeof socketServer>>;

  beforeAll(async () => {
    server = await socketServer(() => ({ closed: false, outbox: null, outboxBytes: 0 }));
  });

  afterAll(() => {
    server.close();
  });

  const connect = () => server.connect();

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
