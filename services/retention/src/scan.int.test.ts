import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, ensureStreams, publishEvent, type Bus } from '@parley/bus';
import { buildMeta, newId } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { scanExpired } from './scan.js';

const log = createLogger({ service: 'test', level: 'silent' });
const DAY = 86_400_000;

/**
 * Issue 18, item 3: the age of data survives a restore. A restore stores every event again (new
 * JetStream timestamps); retention must still expire it by when it happened.
 */
describe('scanExpired ages events by their own time', () => {
  let env: TestEnv;
  let bus: Bus;
  const stream = () => `${env.namespace}_scan`;
  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'scan-test', log });
    await ensureStreams(bus.jsm, [{ name: stream(), description: 't', subjects: [`${env.namespace}.scan.*`], maxAgeSeconds: 0, maxMsgsPerSubject: -1, duplicateWindowSeconds: 120, replicas: 1 }], log);
  });
  afterAll(async () => {
    await bus?.nc.close();
    await env?.cleanup();
  });

  it('expires events stored just now that happened before the cutoff (a restored stream), and stops at the first fresh one', async () => {
    const now = Date.now();
    const publish = async (occurredAt: number, i: number) =>
      publishEvent(bus.js, `${env.namespace}.scan.x`, { type: 'T', meta: buildMeta({ eventId: newId(), occurredAt: new Date(occurredAt), actorId: null, correlationId: 'c' }), i } as { type: string }, { msgId: `m${i}` });
    // As a restore writes them: all stored now, in their original order and with their original times.
    await publish(now - 400 * DAY, 1);
    await publish(now - 380 * DAY, 2);
    const fresh = await publish(now - 10 * DAY, 3);
    await publish(now - 5 * DAY, 4);
    const seen: { seq: number; storedAt: number }[] = [];
    const end = await scanExpired(bus.js, bus.jsm, stream(), new Date(now - 365 * DAY), (e) => seen.push({ seq: e.seq, storedAt: e.storedAt }));
    expect(seen.map((e) => e.seq)).toEqual([1, 2]);
    expect(seen[0]!.storedAt).toBe(now - 400 * DAY);
    expect(end.firstFreshSeq).toBe(fresh.seq);
  });
});
