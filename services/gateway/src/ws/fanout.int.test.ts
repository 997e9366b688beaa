import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, type Bus } from '@parley/bus';
import { newId } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { createMetrics } from '@parley/telemetry';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { ChatDelivery } from './delivery.js';
import { LiveFanout } from './fanout.js';
import { SocketRegistry } from './registry.js';

/** What a WebSocket send is decided on: the chat seq this gateway's knowledge of its members reflects. */
describe('the send basis of a followed chat', () => {
  let env: TestEnv;
  let bus: Bus;
  let fanout: LiveFanout;
  const log = createLogger({ service: 'test', level: 'silent' });

  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'fanout-int', log });
    const metrics = createMetrics('gateway');
    fanout = new LiveFanout({ bus, namespace: env.namespace, registry: new SocketRegistry(), delivery: new ChatDelivery(metrics, 1 << 20), log, metrics, maxCatchUp: 1000, sequencer: { observe: () => {} } });
  });
  afterAll(async () => {
    await fanout?.stop();
    await bus?.nc.close();
    await env?.cleanup();
  });

  it('stays at the events applied here when another user\'s socket set-up brings a newer projection answer', () => {
    const chatId = newId();
    fanout.follow(chatId);
    // The first socket's set-up: the projection's answer at seq 10 starts the chat here.
    fanout.noteSnapshot(chatId, 10);
    expect(fanout.basisOf(chatId)).toBe(10);
    // Another user's socket: the projection is at 11 (say, the first user removed at 11), which
    // this gateway has not applied. Before: the basis became 11, and a send of the removed user
    // was decided past their removal, so accepted.
    fanout.noteSnapshot(chatId, 11);
    expect(fanout.basisOf(chatId)).toBe(10);
    expect(fanout.basisOf(newId())).toBeUndefined();
  });
});
