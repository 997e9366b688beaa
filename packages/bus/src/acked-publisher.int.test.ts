import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamApiError } from '@nats-io/jetstream';
import { TimeoutError } from '@nats-io/transport-node';
import { createLogger } from '@parley/log';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { AckedPublisher } from './acked-publisher.js';
import { connectBus, type Bus } from './connect.js';
import { publishEvent, WrongLastSequenceError } from './publish.js';
import { isJetStreamUnavailable } from './startup.js';
import { ensureStreams } from './streams.js';

const log = createLogger({ service: 'test', level: 'silent' });

describe('AckedPublisher: js.publish with acknowledgements on one subscription', () => {
  let env: TestEnv;
  let bus: Bus;
  let stream: string;
  let prefix: string;

  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'acked', log });
    stream = `${env.namespace}_ackedtest`;
    prefix = `${env.namespace}.ackedtest`;
    await ensureStreams(bus.jsm, [{ name: stream, description: 'test', subjects: [`${prefix}.*`], maxAgeSeconds: 0, maxMsgsPerSubject: -1, duplicateWindowSeconds: 120, replicas: 1 }], log);
  });
  afterAll(async () => {
    await bus?.nc.close();
    await env?.cleanup();
  });

  it('answers as js.publish does: stored, then a duplicate of the same message id at the same place', async () => {
    const publisher = AckedPublisher.of(bus);
    expect(AckedPublisher.of(bus)).toBe(publisher);
    const first = await publisher.publish(`${prefix}.a`, '{"n":1}', { msgID: 'm-1' });
    expect(first).toMatchObject({ stream, duplicate: false });
    const again = await publisher.publish(`${prefix}.a`, '{"n":1}', { msgID: 'm-1' });
    expect(again).toMatchObject({ stream, seq: first.seq, duplicate: true });
    const stored = await bus.jsm.streams.getMessage(stream, { seq: first.seq });
    expect(stored?.json()).toEqual({ n: 1 });
    expect(stored?.header.get('Nats-Msg-Id')).toBe('m-1');
    // Many at once, answered each to its own caller.
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => publisher.publish(`${prefix}.many`, JSON.stringify({ i }), { msgID: `many-${i}` })));
    expect(new Set(acks.map((a) => a.seq)).size).toBe(200);
    for (const [i, ack] of acks.entries()) expect((await bus.jsm.streams.getMessage(stream, { seq: ack.seq }))?.json()).toEqual({ i });
  });

  it('refuses an append whose expected subject sequence is stale, as WrongLastSequenceError through publishEvent', async () => {
    const publisher = AckedPublisher.of(bus);
    const subject = `${prefix}.expect`;
    const head = await publishEvent(publisher, subject, { type: 'Tested' }, { msgId: 'e-1', expectLastSubjectSequence: 0 });
    await expect(publisher.publish(subject, '{}', { msgID: 'e-2', expect: { lastSubjectSequence: 0 } })).rejects.toBeInstanceOf(JetStreamApiError);
    await expect(publishEvent(publisher, subject, { type: 'Tested' }, { msgId: 'e-3', expectLastSubjectSequence: 0 })).rejects.toBeInstanceOf(WrongLastSequenceError);
    expect((await publishEvent(publisher, subject, { type: 'Tested' }, { msgId: 'e-4', expectLastSubjectSequence: head.seq })).duplicate).toBe(false);
  });

  it('says JetStream is unavailable when no stream takes the subject, and times out when nobody answers', async () => {
    const publisher = AckedPublisher.of(bus);
    const none = await publisher.publish(`${env.namespace}.nostream.x`, '{}', { msgID: 'n-1' }).catch((error: unknown) => error);
    expect(isJetStreamUnavailable(none)).toBe(true);
    // A plain subscriber takes the message and never answers.
    const silent = bus.nc.subscribe(`${env.namespace}.silent.x`);
    const started = Date.now();
    const timedOut = await publisher.publish(`${env.namespace}.silent.x`, '{}', { msgID: 's-1', timeout: 300 }).catch((error: unknown) => error);
    expect(timedOut).toBeInstanceOf(TimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    silent.unsubscribe();
  });

  it('refuses options it would otherwise drop', async () => {
    await expect(AckedPublisher.of(bus).publish(`${prefix}.a`, '{}', { expect: { lastSequence: 1 } })).rejects.toThrow(/does not support/);
  });
});
