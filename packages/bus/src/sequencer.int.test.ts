import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@parley/log';
import { createMetrics } from '@parley/telemetry';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { connectBus, type Bus } from './connect.js';
import { claimSubject, lastOnSubject, publishEvent, WrongLastSequenceError } from './publish.js';
import { Sequencer } from './sequencer.js';
import { ensureStreams } from './streams.js';

const log = createLogger({ service: 'test', level: 'silent' });

describe('Sequencer: gap-free per-subject seq across processes', () => {
  let env: TestEnv;
  let bus: Bus;
  let other: Bus;
  let stream: string;
  let prefix: string;

  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'seq-a', log });
    other = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'seq-b', log });
    stream = `${env.namespace}_seqtest`;
    prefix = `${env.namespace}.seqtest`;
    await ensureStreams(bus.jsm, [{ name: stream, description: 'test', subjects: [`${prefix}.*`, `${prefix}claim.*`], maxAgeSeconds: 0, maxMsgsPerSubject: -1, duplicateWindowSeconds: 120, replicas: 1 }], log);
  });
  afterAll(async () => {
    await bus?.nc.close();
    await other?.nc.close();
    await env?.cleanup();
  });

  const event = (seq: number, tag: string) => ({ type: 'Tested', seq, tag });

  it('assigns 1..n without gaps or repeats when two sequencers (two gateways) append concurrently', async () => {
    const subject = `${prefix}.race`;
    const a = new Sequencer(bus.js, bus.jsm, stream);
    const b = new Sequencer(other.js, other.jsm, stream);
    const appends = [];
    for (let i = 0; i < 40; i++) {
      appends.push(a.append(subject, `a${i}`, (seq) => event(seq, `a${i}`)));
      appends.push(b.append(subject, `b${i}`, (seq) => event(seq, `b${i}`)));
    }
    const results = await Promise.all(appends);
    const seqs = results.map((r) => r.event.seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    // What is stored agrees with what the appenders were told, in stream order.
    const stored: number[] = [];
    for (const r of [...results].sort((x, y) => x.streamSeq - y.streamSeq)) {
      const msg = await bus.jsm.streams.getMessage(stream, { seq: r.streamSeq });
      stored.push(msg!.json<{ seq: number }>().seq);
    }
    expect(stored).toEqual(seqs);
    expect(await a.currentSeq(subject)).toBe(80);
  });

  it('decides again with what another process appended after its basis, read from the stream', async () => {
    const subject = `${prefix}.decided`;
    const a = new Sequencer(bus.js, bus.jsm, stream);
    const b = new Sequencer(other.js, other.jsm, stream);
    await a.append(subject, 'first', (seq) => event(seq, 'first'));
    // a decided on seq 1; b appends a "stop" at seq 2 before a's append arrives.
    await b.append(subject, 'stop', (seq) => event(seq, 'stop'));
    const seen: number[][] = [];
    const read = async (after: number, upto: number) => {
      const out: { type: string; seq: number; tag: string }[] = [];
      for (let next = 1; ; ) {
        const stored = await bus.jsm.direct.getMessage(stream, { next_by_subj: subject, seq: next });
        if (!stored) return out;
        const e = stored.json<{ type: string; seq: number; tag: string }>();
        if (e.seq > after && e.seq <= upto) out.push(e);
        next = stored.seq + 1;
      }
    };
    const decided = await a.appendDecided(
      subject,
      'after-stop',
      1,
      (newer, seq) => {
        seen.push(newer.map((e) => e.seq));
        return newer.some((e) => (e as { tag?: string }).tag === 'stop') ? { refusal: 'stopped' } : { event: event(seq, 'after-stop') };
      },
      read,
    );
    expect(decided).toEqual({ refusal: 'stopped' });
    // Its cached head was seq 1: the conflict made it read the head again and fold seq 2.
    expect(seen.at(-1)).toEqual([2]);
    expect(await a.currentSeq(subject)).toBe(2);
    // With nothing refusing, it appends after what it folded.
    const appended = await a.appendDecided(subject, 'go', 2, (_newer, seq) => ({ event: event(seq, 'go') }), read);
    expect('event' in appended && appended.event.seq).toBe(3);
  });

  it('never gives a seq twice when the subject\'s newest event was deleted from the stream', async () => {
    const subject = `${prefix}.deletedhead`;
    const a = new Sequencer(bus.js, bus.jsm, stream);
    let third = 0;
    for (const tag of ['one', 'two', 'three']) third = (await a.append(subject, tag, (seq) => event(seq, tag))).streamSeq;
    // The newest event goes (as a late edit of a deleted message is removed by the reactor).
    await bus.jsm.streams.deleteMessage(stream, third, false);
    const none = async () => [];
    // This process still remembers seq 3; another knows it from its basis only (the projection).
    const here = await a.appendDecided(subject, 'four', 2, (_newer, seq) => ({ event: event(seq, 'four') }), none);
    expect('event' in here && here.event.seq).toBe(4);
    await bus.jsm.streams.deleteMessage(stream, 'event' in here ? here.streamSeq : 0, false);
    const b = new Sequencer(other.js, other.jsm, stream);
    const there = await b.appendDecided(subject, 'five', 4, (_newer, seq) => ({ event: event(seq, 'five') }), none);
    // Before: 3 and 3 again (the head read from the stream was seq 2).
    expect('event' in there && there.event.seq).toBe(5);
  });

  it('continues after the newest event the subject still holds when the server forgot the subject, from a process with no memory of it', async () => {
    // NATS 2.9.10 answers "no message" for a subject whose newest message was deleted, and accepts
    // an append expecting none: a writer new to the subject took it for empty and gave seq 1 again.
    const subject = `${prefix}.forgotten`;
    const a = new Sequencer(bus.js, bus.jsm, stream);
    const stored: number[] = [];
    for (const tag of ['one', 'two', 'three', 'four']) {
      stored.push((await a.append(subject, `forgotten-${tag}`, (seq) => event(seq, tag))).streamSeq);
      await bus.js.publish(`${prefix}.elsewhere`, 'between'); // other subjects' messages in between
    }
    await bus.jsm.streams.deleteMessage(stream, stored[3]!, false);
    const last = await lastOnSubject(other.jsm, stream, subject);
    expect(last?.stored.seq).toBe(stored[2]);
    expect(await lastOnSubject(other.jsm, stream, `${prefix}.never`)).toBeNull();

    const b = new Sequencer(other.js, other.jsm, stream);
    expect(await b.currentSeq(subject)).toBe(3);
    // Two writers new to the subject, both expecting "no message" (what the server holds for it):
    // one is stored after the newest held event, the other is refused and goes after it. (Without
    // a basis they reuse the deleted event's seq 4; Parley's writers give one: reliability.md.)
    const c = new Sequencer(bus.js, bus.jsm, stream);
    const both = await Promise.all([b.append(subject, 'forgotten-five-b', (seq) => event(seq, 'five-b')), c.append(subject, 'forgotten-five-c', (seq) => event(seq, 'five-c'))]);
    expect(both.map((r) => r.event.seq).sort()).toEqual([4, 5]);
    // Stored in that order, once each.
    const held: number[] = [];
    for (let next = 1; ; ) {
      const m = await bus.jsm.direct.getMessage(stream, { next_by_subj: subject, seq: next });
      if (!m) break;
      held.push(m.json<{ seq: number }>().seq);
      next = m.seq + 1;
    }
    expect(held).toEqual([1, 2, 3, 4, 5]);
  });

  it('builds on a head it observed (a live event of another gateway) instead of conflicting', async () => {
    const subject = `${prefix}.observed`;
    const metrics = createMetrics('test');
    const conflicts = async () =>
      (await metrics.registry.getSingleMetric('bus_publishes_total')!.get()).values.find((v) => v.labels.outcome === 'conflict')?.value ?? 0;
    const a = new Sequencer(bus.js, bus.jsm, stream, metrics);
    const b = new Sequencer(other.js, other.jsm, stream);
    await a.append(subject, 'o1', (seq) => event(seq, 'a'));
    const fromB = await b.append(subject, 'o2', (seq) => event(seq, 'b'));
    // Without the observation a's cached head is stale: its next append conflicts once.
    await a.append(subject, 'o3', (seq) => event(seq, 'a'));
    expect(await conflicts()).toBe(1);
    const again = await b.append(subject, 'o4', (seq) => event(seq, 'b'));
    a.observe(subject, again.streamSeq, again.event.seq);
    // News older than what a knows changes nothing.
    a.observe(subject, fromB.streamSeq, fromB.event.seq);
    const next = await a.append(subject, 'o5', (seq) => event(seq, 'a'));
    expect(next.event.seq).toBe(5);
    expect(await conflicts()).toBe(1);
  });

  it('returns the original event for a repeated msgId, even from another process', async () => {
    const subject = `${prefix}.dedup`;
    const a = new Sequencer(bus.js, bus.jsm, stream);
    const b = new Sequencer(other.js, other.jsm, stream);
    const first = await a.append(subject, 'same-id', (seq) => event(seq, 'first'));
    await a.append(subject, 'other-id', (seq) => event(seq, 'second'));
    const retry = await b.append(subject, 'same-id', (seq) => event(seq, 'retry'));
    expect(retry.duplicate).toBe(true);
    expect(retry.event).toEqual(first.event);
    expect(retry.streamSeq).toBe(first.streamSeq);
    expect(await b.currentSeq(subject)).toBe(2);
  });

  it('refuses a publish whose expected last subject sequence is stale', async () => {
    const subject = `${prefix}.stale`;
    await publishEvent(bus.js, subject, { type: 'Tested' }, { msgId: 's1', expectLastSubjectSequence: 0 });
    await expect(publishEvent(bus.js, subject, { type: 'Tested' }, { msgId: 's2', expectLastSubjectSequence: 0 })).rejects.toBeInstanceOf(WrongLastSequenceError);
  });

  it('lets exactly one of several concurrent claims win', async () => {
    const subject = `${prefix}claim.name`;
    const claims = await Promise.all(
      ['x', 'y', 'z'].map((who, i) =>
        claimSubject((i % 2 ? other : bus).js, bus.jsm, stream, subject, { type: 'Claimed', who }, `claim-${who}`),
      ),
    );
    const winners = claims.filter((c) => c === null);
    expect(winners).toHaveLength(1);
    const holders = new Set(claims.filter((c) => c !== null).map((c) => c!.value.who));
    expect(holders.size).toBe(1);
    // The losers were told who holds it, and it is the winner.
    const winner = ['x', 'y', 'z'][claims.findIndex((c) => c === null)];
    expect([...holders][0]).toBe(winner);
  });
});
