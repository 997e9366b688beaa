import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '@parley/telemetry';
import type { ChatEvent } from '@parley/contracts';
import { ChatDelivery } from './delivery.js';
import type { Socket } from './registry.js';
import { socketServer } from './socket-server.test-helper.js';

/**
 * ChatDelivery against a real uWebSockets.js server: what a socket has per chat is kept with its
 * memberships (SocketData.chats) and, for chats it is not in, apart (SocketData.notIn); nothing
 * may arrive twice as a socket joins, leaves and joins again.
 */
describe('ChatDelivery', () => {
  const delivery = new ChatDelivery(createMetrics('gateway-test'), 1024 * 1024);
  let server: Awaited<ReturnType<typeof socketServer>>;

  beforeAll(async () => {
    server = await socketServer(() => ({ closed: false, chats: new Map(), notIn: null, held: null, outbox: null, outboxBytes: 0 }));
  });

  afterAll(() => {
    server.close();
  });

  /** A connected socket, and the seqs of the frames its client has received so far. */
  const connect = async () => {
    const { socket, client, frames } = await server.connect();
    const seqs = () => frames.map((frame) => (JSON.parse(frame) as { seq: number }).seq);
    return { socket, client, frames, seqs };
  };

  const event = (chatId: string, seq: number): ChatEvent =>
    ({ type: 'MessageDeleted', chatId, seq, data: { messageId: `m${seq}` }, meta: { eventId: `e${seq}`, occurredAt: new Date(0).toISOString(), actorId: 'u' } }) as unknown as ChatEvent;

  /** Publishes a marker event to a chat of its own and waits for it: every frame sent before it has arrived. */
  let markers = 1_000_000;
  const settled = async (socket: Socket, frames: string[]) => {
    const marker = ++markers;
    delivery.join(socket, 'marker');
    delivery.publish(event('marker', marker));
    while (frames.length === 0 || (JSON.parse(frames.at(-1)!) as { seq: number }).seq !== marker) await new Promise((resolve) => setTimeout(resolve, 5));
    frames.pop();
  };

  it('a socket caught up before it joins does not get the caught-up events again live', async () => {
    const { socket, client, frames, seqs } = await connect();
    // A catch-up sends 1..3 to a socket that is not in the chat yet.
    for (const seq of [1, 2, 3]) delivery.sendNow(socket, 'c1', seq, JSON.stringify({ seq }));
    expect(socket.getUserData().state.chats.has('c1')).toBe(false);
    delivery.join(socket, 'c1');
    // The live consumer is behind the catch-up: 2 and 3 arrive again, then 4 is new.
    for (const seq of [2, 3, 4]) delivery.publish(event('c1', seq));
    await settled(socket, frames);
    expect(seqs()).toEqual([1, 2, 3, 4]);
    expect(socket.getUserData().state.chats.get('c1')).toBe(4);
    expect(socket.getUserData().state.notIn).toBeNull();
    client.close();
  });

  it("a socket that left a chat gets none of its events twice: held ones, a resume's, after rejoining", async () => {
    const { socket, client, frames, seqs } = await connect();
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
    await settled(socket, frames);
    expect(seqs()).toEqual([5, 6, 7]);
    expect(socket.getUserData().state.notIn).toBeNull();
    client.close();
  });

  it('sends a batch bigger than the slow-reader limit in one go to a client that reads (no 4008)', async () => {
    // A resume of 500 events, a gap fill or a catch-up sends its batch in one synchronous loop.
    // Before, the frames queued for the turn's end counted as buffered, and past 1 MiB of them
    // the socket was closed as a slow reader though the client was reading on localhost.
    const { socket, client, frames, seqs } = await connect();
    delivery.join(socket, 'big');
    const body = 'x'.repeat(4000);
    let sent = 0;
    for (let seq = 1; seq <= 300; seq++) if (delivery.sendNow(socket, 'big', seq, JSON.stringify({ seq, body }))) sent += 1;
    expect(sent).toBe(300);
    await settled(socket, frames);
    expect(socket.getUserData().state.closed).toBe(false);
    expect(seqs()).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    client.close();
  });
});
