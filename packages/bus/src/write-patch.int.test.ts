import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { createLogger } from '@parley/log';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { connectBus, type Bus } from './connect.js';
import { writeOncePerTurn } from './write-patch.js';

/** Counts the connection's socket writes (the transport's send, which flushPending calls), and keeps what each wrote. */
function countWrites(nc: NatsConnection): { count: number; frames: string[] } {
  const transport = (nc as unknown as { protocol: { transport: { send(frame: Uint8Array): void } } }).protocol.transport;
  const counter = { count: 0, frames: [] as string[] };
  const send = transport.send.bind(transport);
  transport.send = (frame: Uint8Array) => {
    counter.count += 1;
    counter.frames.push(Buffer.from(frame).toString('latin1'));
    send(frame);
  };
  return counter;
}

/**
 * Runs each function in a callback of its own, all in one event-loop turn, with a microtask
 * checkpoint after each: immediates queued together run in one check phase (and the patch's own
 * flush, queued during it, in the next). Timers did not always: each setTimeout reads the clock,
 * so on a loaded machine ten of them could straddle a millisecond and run in two turns (a CI run
 * failed so).
 */
function inSeparateCallbacks(fns: (() => void)[]): Promise<void> {
  return new Promise((resolve) => {
    for (const fn of fns) setImmediate(fn);
    setImmediate(resolve);
  });
}

describe('NATS writes once per event-loop turn (write-patch.ts)', () => {
  let env: TestEnv;
  let bus: Bus;

  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'write-patch', log: createLogger({ service: 'test', level: 'silent' }) });
  });
  afterAll(async () => {
    await bus?.nc.close();
    await env?.cleanup();
  });

  it('applies to the installed nats.js (an upgrade that changes sendCommand fails here, to be looked at)', () => {
    expect(writeOncePerTurn()).toBe(true);
  });

  it('writes the publishes of ten callbacks of one turn at once, and every one arrives, in order', async () => {
    const subject = `${env.namespace}.patch.turn`;
    const got: string[] = [];
    const all = new Promise<void>((resolve) => {
      bus.nc.subscribe(subject, {
        callback: (_err, msg) => {
          got.push(msg.string());
          if (got.length === 10) resolve();
        },
      });
    });
    await bus.nc.flush();
    const writes = countWrites(bus.nc);
    await inSeparateCallbacks(Array.from({ length: 10 }, (_, i) => () => bus.nc.publish(subject, `m${i}`)));
    await all;
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    // nats.js's own microtask flush wrote once per callback (10). Counted by what carries them: the
    // connection may write something of its own meanwhile (a PONG to the server's PING).
    const carrying = writes.frames.filter((frame) => frame.includes(`PUB ${subject} `));
    expect(carrying).toHaveLength(1);
    expect(carrying[0]!.split(`PUB ${subject} `)).toHaveLength(11);
  });

  it('writes a publish made right before close() (the library closes without writing what is queued)', async () => {
    const subject = `${env.namespace}.patch.last`;
    const watcher = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'write-patch-watcher', log: createLogger({ service: 'test', level: 'silent' }) });
    const last = new Promise<string>((resolve) => watcher.nc.subscribe(subject, { callback: (_err, msg) => resolve(msg.string()) }));
    await watcher.nc.flush();
    const closing = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'write-patch-closing', log: createLogger({ service: 'test', level: 'silent' }) });
    closing.nc.publish(subject, 'goodbye');
    await closing.nc.close();
    expect(await last).toBe('goodbye');
    await watcher.nc.close();
  });

  it('still writes at once what passes the buffer limit, and flush() still waits for the server', async () => {
    const writes = countWrites(bus.nc);
    bus.nc.publish(`${env.namespace}.patch.big`, new Uint8Array(8)); // the first command of a turn: deferred
    expect(writes.count).toBe(0);
    bus.nc.publish(`${env.namespace}.patch.big`, new Uint8Array(64 * 1024)); // past the 32 KiB limit: now
    expect(writes.count).toBe(1);
    await bus.nc.flush();
    expect(writes.count).toBeGreaterThanOrEqual(2);
  });
});
