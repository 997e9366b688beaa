import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, ensureStreams, type Bus } from '@parley/bus';
import { declaredStreams, subjects, type ChatEvent, type MessageSent } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { createMetrics, type Metrics } from '@parley/telemetry';
import { createTestEnv, type TestEnv } from '@parley/testing';
import type { ChatDelivery } from './delivery.js';
import { LiveFanout } from './fanout.js';
import type { SocketRegistry } from './registry.js';

/**
 * Two gateways' fan-outs on a real NATS with the real chats stream (RePublish and all): the fast
 * copy of an appended event reaches the appending gateway's sockets and the other gateway's, the
 * republished copy of it is then dropped, and a fast copy that runs ahead of an event still on its
 * way is not delivered before it.
 */
describe('LiveFanout: the fast path beside the republish', () => {
  const log = createLogger({ service: 'test', level: 'silent' });
  const chatId = '0193a5b2-0000-7000-8000-00000000f001';
  let env: TestEnv;
  const buses: Bus[] = [];
  const gateways: { fanout: LiveFanout; metrics: Metrics; delivered: number[]; waiters: Map<number, () => void> }[] = [];

  const event = (seq: number): MessageSent => ({
    type: 'MessageSent',
    version: 1,
    chatId,
    seq,
    data: { messageId: `0193a5b2-0000-7000-8000-0000000${String(seq).padStart(5, '0')}`, senderId: 'u-1', clientMsgId: `k-${seq}`, body: `message ${seq}`, replyTo: null, attachmentIds: [] },
    meta: { eventId: `e-${seq}`, occurredAt: new Date().toISOString(), actorId: 'u-1', correlationId: `c-${seq}`, causationId: null },
  });

  /** Resolves when the gateway has delivered `seq`. */
  const deliveredAt = (gateway: (typeof gateways)[number], seq: number) =>
    gateway.delivered.includes(seq) ? Promise.resolve() : new Promise<void>((resolve) => gateway.waiters.set(seq, resolve));

  const store = async (seq: number) => (await buses[0]!.js.publish(subjects.chat(env.namespace, chatId), JSON.stringify(event(seq)))).seq;
  const fastCount = async (metrics: Metrics) => (await metrics.liveEvents.get()).values.find((v) => v.labels.path === 'fast')?.value ?? 0;
  const republishCount = async (metrics: Metrics) => (await metrics.liveEvents.get()).values.find((v) => v.labels.path === 'republish')?.value ?? 0;

  beforeAll(async () => {
    env = await createTestEnv();
    for (const name of ['gateway-a', 'gateway-b']) {
      const bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name, log });
      buses.push(bus);
      const metrics = createMetrics(name);
      const gateway = { metrics, delivered: [] as number[], waiters: new Map<number, () => void>() } as (typeof gateways)[number];
      // The fan-out's view of a gateway's sockets: what it hands over for delivery, in order.
      const delivery = {
        publish: (e: ChatEvent) => {
          gateway.delivered.push(e.seq);
          gateway.waiters.get(e.seq)?.();
        },
        join: () => {},
        leave: () => {},
        reset: () => {
          throw new Error('no reset expected');
        },
      } as unknown as ChatDelivery;
      const registry = { socketsOf: () => [] } as unknown as SocketRegistry;
      gateway.fanout = new LiveFanout({ bus, namespace: env.namespace, registry, delivery, log, metrics, maxCatchUp: 100, sequencer: { observe: () => {} } });
      gateway.fanout.follow(chatId);
      gateways.push(gateway);
    }
    await ensureStreams(buses[0]!.jsm, [declaredStreams(env.namespace).chats], log);
    for (const bus of buses) await bus.nc.flush();
  });

  afterAll(async () => {
    for (const { fanout } of gateways) await fanout.stop();
    for (const bus of buses) await bus.nc.close();
    await env?.cleanup();
  });

  it('delivers each event once and in order, taking the fast copy when it is the next one', async () => {
    const [a, b] = gateways as [(typeof gateways)[number], (typeof gateways)[number]];
    // A chat is started by the republish (a fast copy is never a gateway's first event of a chat).
    await store(1);
    await Promise.all([deliveredAt(a, 1), deliveredAt(b, 1)]);

    // Gateway A announces event 2 (as after its PubAck); here the announcement goes first, so both
    // gateways take the fast copy, and the republish that follows the store is dropped.
    a.fanout.announce(event(2), 2);
    // Its own sockets get it at once, before any I/O: not by its copy's round trip through NATS.
    for (let i = 0; i < 10; i += 1) await Promise.resolve();
    expect(a.delivered).toEqual([1, 2]);
    await deliveredAt(b, 2);
    expect(await fastCount(a.metrics)).toBe(1);
    expect(await fastCount(b.metrics)).toBe(1);
    expect(await store(2)).toBe(2);

    // Event 4's fast copy runs ahead of event 3 (another writer's, not yet republished): it must
    // wait, and the republish brings 3 and then 4.
    a.fanout.announce(event(4), 4);
    expect(await store(3)).toBe(3);
    expect(await store(4)).toBe(4);
    await Promise.all([deliveredAt(a, 4), deliveredAt(b, 4)]);

    expect(a.delivered).toEqual([1, 2, 3, 4]);
    expect(b.delivered).toEqual([1, 2, 3, 4]);
    for (const { metrics } of [a, b]) {
      expect(await fastCount(metrics)).toBe(1);
      expect(await republishCount(metrics)).toBe(3);
    }
  });
});
