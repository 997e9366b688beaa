import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@parley/log';
import { createMetrics } from '@parley/telemetry';
import { createTestEnv, eventually, parseNoted, type Noted, type TestEnv } from '@parley/testing';
import { connectBus, type Bus } from './connect.js';
import { Processor, type ProcessorOptions } from './processor.js';
import type { CheckpointStore, Leadership, Lease, PositionedEvent } from './processor-store.js';
import { publishEvent } from './publish.js';
import { ensureStreams } from './streams.js';

// The processor's own logic (batching, retries, poison, gap restarts, leadership) against real
// JetStream. The store is a few lines in memory because what is under test is the processor; the
// Postgres store keeps its real-Postgres tests (@parley/projector-pg).

/** Atomic and idempotent as CheckpointStore requires: a batch's events and checkpoint change together. */
class MemoryStore implements CheckpointStore<Noted> {
  checkpoint = 0;
  readonly applied: number[] = [];
  /** The stream sequences of every batch offered, committed or not. */
  readonly batches: number[][] = [];
  /** Makes applying an event throw; `transient` errors are what isTransient recognises. */
  failure: (event: Noted) => Error | undefined = () => undefined;

  async loadCheckpoint(): Promise<number> {
    return this.checkpoint;
  }

  async applyBatch(items: PositionedEvent<Noted>[], beforeCommit: () => void | Promise<void>): Promise<PositionedEvent<Noted>[]> {
    this.batches.push(items.map((i) => i.position.streamSeq));
    let last = this.checkpoint;
    const fresh: PositionedEvent<Noted>[] = [];
    for (const item of items) {
      if (item.position.streamSeq <= last) continue;
      const error = this.failure(item.event);
      if (error) throw error;
      fresh.push(item);
      last = item.position.streamSeq;
    }
    await beforeCommit();
    this.checkpoint = last;
    this.applied.push(...fresh.map((i) => i.event.n));
    return fresh;
  }

  isTransient(error: unknown): boolean {
    return (error as { transient?: boolean }).transient === true;
  }
}

/** One holder at a time; `lose()` does what a store whose session died does. */
class Baton implements Leadership {
  private holder: { onLost: () => void } | undefined;

  async acquire(onLost: () => void): Promise<Lease | undefined> {
    if (this.holder) return undefined;
    const holder = { onLost };
    this.holder = holder;
    return {
      release: async () => {
        if (this.holder === holder) this.holder = undefined;
      },
    };
  }

  /** Taken by another instance (released by calling the result). */
  takeElsewhere(): () => void {
    const holder = { onLost: () => {} };
    this.holder = holder;
    return () => {
      if (this.holder === holder) this.holder = undefined;
    };
  }

  lose(): void {
    const holder = this.holder;
    this.holder = undefined;
    holder?.onLost();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Processor', () => {
  let env: TestEnv;
  let bus: Bus;
  let stream: string;
  let subject: string;
  let run = 0;
  const processors: Processor<Noted>[] = [];

  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'processor-test', log: createLogger({ service: 't', level: 'silent' }) });
  });
  afterAll(async () => {
    await Promise.all(processors.map((p) => p.stop()));
    await bus?.nc.close();
    await env?.cleanup();
  });

  beforeEach(async () => {
    run += 1;
    stream = `${env.namespace}_processor${run}`;
    subject = `${env.namespace}.processor${run}.a`;
    await ensureStreams(bus.jsm, [{ name: stream, description: 't', subjects: [`${env.namespace}.processor${run}.*`], maxAgeSeconds: 0, maxMsgsPerSubject: -1, duplicateWindowSeconds: 120, replicas: 1 }], createLogger({ service: 't', level: 'silent' }));
  });

  function processor(options: Partial<ProcessorOptions<Noted>> = {}) {
    const store = new MemoryStore();
    const leadership = new Baton();
    const logs: string[] = [];
    const metrics = createMetrics('test');
    const p = new Processor<Noted>({
      bus,
      name: `processor${run}`,
      stream,
      filterSubject: `${env.namespace}.processor${run}.*`,
      parse: parseNoted,
      leadership,
      store,
      log: createLogger({ service: 't', level: 'info', destination: { write: (line: string) => logs.push(line) } }),
      metrics,
      ackWaitMs: 10_000,
      maxAttempts: 3,
      ...options,
    });
    processors.push(p);
    return { p, store, leadership, logs, metrics };
  }

  const publish = (n: number) => publishEvent(bus.js, subject, { type: 'Noted', n, meta: { eventId: `e${n}` } } as Noted, { msgId: `${run}-${n}` });
  const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
  /**
   * Pulls one delivery from the processor's durable consumer elsewhere, publishing events after
   * `from` until that pull has one (the processor's own pulls come first). Returns the last event
   * published and the one taken; nothing is published after the taken one. `ack`: the thief acks
   * it, so the consumer counts nothing pending or unacknowledged.
   */
  async function stealOneDelivery(consumerName: string, from: number, ack = false): Promise<{ last: number; stolen: number | undefined }> {
    const consumer = await bus.js.consumers.get(stream, consumerName);
    const stolen = consumer.next({ expires: 10_000 });
    await bus.nc.flush();
    let last = from;
    let taken = false;
    void stolen.then(() => (taken = true));
    while (!taken && last < from + 19) {
      await publish(++last);
      await sleep(50);
    }
    const msg = await stolen;
    if (ack) await msg?.ackAck();
    return { last, stolen: msg?.json<Noted>().n };
  }
  const applied = (store: MemoryStore, n: number) => eventually(async () => (store.applied.length >= n ? store.applied : undefined), 15_000, `${n} events applied`);

  it('applies in stream order, at most batchSize a batch; a failing after-commit step is logged and not retried', async () => {
    const afterCommits: number[][] = [];
    const { p, store, logs } = processor({
      batchSize: 5,
      lingerMs: 500,
      afterCommit: async (events) => {
        afterCommits.push(events.map((e) => e.n));
        throw new Error('cache down');
      },
    });
    for (const n of upTo(23)) await publish(n);
    p.start();
    expect(await applied(store, 23)).toEqual(upTo(23));
    expect(store.batches.flat()).toEqual(upTo(23));
    expect(Math.max(...store.batches.map((b) => b.length))).toBe(5);
    expect(afterCommits.flat()).toEqual(upTo(23));
    expect(logs.filter((l) => l.includes('after-commit step failed'))).toHaveLength(store.batches.length);
  });

  it('terminates poison (undecodable, unparsable, failing maxAttempts times) and retries a transient failure without limit', async () => {
    const { p, store, logs, metrics } = processor();
    let transientFailures = 4; // more than maxAttempts: a transient failure never becomes poison
    store.failure = (event) => {
      if (event.n === 2) return new Error('violates check constraint');
      if (event.n === 3 && transientFailures-- > 0) return Object.assign(new Error('store unavailable'), { transient: true });
      return undefined;
    };
    p.start();
    await publish(1);
    await publishEvent(bus.js, subject, { type: 'Unknown' }, { msgId: `${run}-junk` });
    await bus.js.publish(subject, 'not json at all');
    for (const n of [2, 3, 4]) await publish(n);
    expect(await applied(store, 3)).toEqual([1, 3, 4]);
    expect((await metrics.registry.getSingleMetric('projector_poison_messages_total')!.get()).values[0]?.value).toBe(3);
    const poisoned = logs.filter((l) => l.includes('poison event terminated')).map((l) => JSON.parse(l) as { reason: string; eventId?: string });
    expect(poisoned.map((l) => l.reason)).toEqual(['not a Noted event', 'not JSON', 'violates check constraint']);
    expect(poisoned[2]?.eventId).toBe('e2');
    // Terminated and acknowledged: nothing is left for JetStream to redeliver.
    await eventually(async () => {
      const info = await bus.jsm.consumers.info(stream, p.name);
      return info.num_ack_pending === 0 && info.num_pending === 0 ? true : undefined;
    });
  });

  it('restarts from its checkpoint after a delivery gap, so the missed event is applied in order', async () => {
    const { p, store, logs } = processor({ batchSize: 1 });
    p.start();
    await publish(1);
    await applied(store, 1);
    // Another pull on the same durable consumer takes one delivery: what a dead leader or a lost
    // reconnect does.
    const { last, stolen } = await stealOneDelivery(p.name, 1);
    expect(stolen).toBeGreaterThan(1);
    const n = last + 1;
    await publish(n);
    expect(await applied(store, n)).toEqual(upTo(n));
    expect(logs.some((l) => l.includes('projector saw a delivery gap'))).toBe(true);
  });

  it('starts a fresh consumer from its checkpoint when its consumer is deleted from under it', async () => {
    const { p, store, logs } = processor();
    p.start();
    await publish(1);
    await applied(store, 1);
    // What a NATS cluster that lost the consumer in its restarts does: the library alone would
    // wait for it forever.
    await bus.jsm.consumers.delete(stream, p.name);
    await publish(2);
    expect(await applied(store, 2)).toEqual([1, 2]);
    expect(logs.some((l) => l.includes('projector consumer lost'))).toBe(true);
  });

  it('restarts a consumer that receives nothing while JetStream counts events as delivered to it', async () => {
    const { p, store, logs } = processor({ batchSize: 1, stallMs: 500 });
    p.start();
    await publish(1);
    await applied(store, 1);
    // The last delivery goes elsewhere and nothing follows it, so no gap shows: only the ack wait
    // (10 s here) would bring it back. The watchdog must not wait that long.
    const { last: n, stolen } = await stealOneDelivery(p.name, 1);
    expect(stolen).toBe(n);
    const started = Date.now();
    expect(await applied(store, n)).toEqual(upTo(n));
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(logs.some((l) => l.includes('projector received nothing while events wait'))).toBe(true);
  });

  it('restarts a consumer that counts nothing pending while the stream holds events after what it applied', async () => {
    const { p, store, logs } = processor({ batchSize: 1, stallMs: 500 });
    p.start();
    await publish(1);
    await applied(store, 1);
    // The last delivery goes elsewhere and is acknowledged there: the consumer's own count says
    // nothing waits, as a NATS 2.9 consumer whose leader moved can say while events wait
    // (e2e/faults/cluster.test.ts). Only the stream shows the event after the checkpoint.
    const { last: n, stolen } = await stealOneDelivery(p.name, 1, true);
    expect(stolen).toBe(n);
    const info = await bus.jsm.consumers.info(stream, p.name);
    expect([info.num_pending, info.num_ack_pending]).toEqual([0, 0]);
    expect(await applied(store, n)).toEqual(upTo(n));
    expect(logs.some((l) => l.includes('projector found events in the stream that its consumer does not deliver'))).toBe(true);
  });

  it('stands by while another instance leads, and after losing leadership stops and competes again', async () => {
    const { p, store, leadership, logs } = processor();
    const releaseOther = leadership.takeElsewhere();
    p.start();
    await publish(1);
    await sleep(2_500);
    expect(store.applied).toEqual([]);
    releaseOther();
    expect(await applied(store, 1)).toEqual([1]);

    leadership.lose();
    const releaseAgain = leadership.takeElsewhere();
    await eventually(async () => (logs.some((l) => l.includes('projector lost its leadership session')) ? true : undefined));
    await sleep(500); // closing the consumer's subscription is asynchronous
    await publish(2);
    await sleep(2_500);
    expect(store.applied).toEqual([1]);
    releaseAgain();
    expect(await applied(store, 2)).toEqual([1, 2]);
  });
});
