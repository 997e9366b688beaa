import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { AUTO_PURGE_STEP, deleteStreamSequences, deleteSubjectMessages, edgeBytesFor, eraseBeforePurge, erasePace, erasesPurgeEdge, ERASE_ROUND_MAX, purgePaced, purgeStepFor, QUICK_ERASE_MS } from './compact.js';
import { useTestBus } from './test-bus.js';

describe('deleteSubjectMessages', () => {
  const t = useTestBus('compact-test');

  /** A stream with two durable consumers that have received nothing yet: one on everything, one on `att.*`. */
  async function streamWithLaggingConsumers(name: string, subjects: string[]): Promise<number[]> {
    await t.bus.jsm.streams.add({ name, subjects: [`${name}.>`] });
    for (const [durable, filter] of [['all', `${name}.>`], ['att', `${name}.att.*`]] as const) {
      await t.bus.jsm.consumers.add(name, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: filter });
    }
    const seqs: number[] = [];
    for (const subject of subjects) seqs.push((await t.bus.js.publish(`${name}.${subject}`, subject)).seq);
    return seqs;
  }

  async function received(name: string, durable: string, count: number): Promise<string[]> {
    const consumer = await t.bus.js.consumers.get(name, durable);
    const got: string[] = [];
    // Waits for `count` (a positive signal), then one more fetch shows nothing else is there.
    while (got.length < count) {
      const batch = await consumer.fetch({ max_messages: count - got.length, expires: 2_000 });
      let n = 0;
      for await (const m of batch) {
        got.push(`${m.seq}:${m.subject.slice(name.length + 1)}`);
        m.ack();
        n++;
      }
      if (n === 0) break;
    }
    return got;
  }

  it('deletes the subject’s messages below a sequence, and consumers still get every other message', async () => {
    // The shape of an attachment deletion: the upload record (1), other events, then the tombstone
    // (6); everything on att.1 below the tombstone goes. A subject rollup or a subject purge here
    // makes NATS 2.9.10 move both consumers past messages 2-5, which were never delivered.
    const name = `${t.env.namespace}_del1`;
    const [, , , , , tombstone] = await streamWithLaggingConsumers(name, ['att.1', 'chat.x', 'att.2', 'att.3', 'chat.x', 'att.1']);
    expect(await deleteSubjectMessages(t.bus.jsm, name, `${name}.att.1`, tombstone)).toBe(1);
    expect(await received(name, 'all', 5)).toEqual(['2:chat.x', '3:att.2', '4:att.3', '5:chat.x', '6:att.1']);
    expect(await received(name, 'att', 3)).toEqual(['3:att.2', '4:att.3', '6:att.1']);
    // Gone for a reader too, and a repeat finds nothing more to delete.
    expect(await t.bus.jsm.streams.getMessage(name, { seq: 1 })).toBeNull();
    expect(await deleteSubjectMessages(t.bus.jsm, name, `${name}.att.1`, tombstone)).toBe(0);
  });

  it('deletes every message on a wildcard filter without a bound, leaving the rest to the consumers', async () => {
    const name = `${t.env.namespace}_del2`;
    await streamWithLaggingConsumers(name, ['att.1', 'chat.x', 'att.2', 'chat.y']);
    expect(await deleteSubjectMessages(t.bus.jsm, name, `${name}.att.*`)).toBe(2);
    expect(await received(name, 'all', 2)).toEqual(['2:chat.x', '4:chat.y']);
    expect((await t.bus.jsm.streams.info(name)).state.messages).toBe(2);
  });
});

describe('purgePaced', () => {
  const t = useTestBus('purge-test');

  it('purges in steps exactly what one request would, keeps the rest in order, and a repeat purges nothing', async () => {
    const name = `${t.env.namespace}_purge1`;
    await t.bus.jsm.streams.add({ name, subjects: [`${name}.>`] });
    for (let i = 1; i <= 11; i++) await t.bus.js.publish(`${name}.chat.${i % 3}`, String(i));
    // Steps of 3 from seq 1 to below 9: 1-3, 4-6, 7-8 (the last step is cut at the bound).
    expect(await purgePaced(t.bus.jsm, name, 9, 3)).toBe(8);
    const { state } = await t.bus.jsm.streams.info(name);
    expect([state.first_seq, state.last_seq, state.messages]).toEqual([9, 11, 3]);
    expect(await purgePaced(t.bus.jsm, name, 9, 3)).toBe(0);
    expect(await purgePaced(t.bus.jsm, name, 10, 0)).toBe(1);
    expect((await t.bus.jsm.streams.getMessage(name, { seq: 10 }))?.string()).toBe('10');
  });

  it('steps by the server version when asked to choose: one request on 2.9, AUTO_PURGE_STEP from 2.10 on; a number is taken as it is', () => {
    expect(purgeStepFor('auto', '2.9.10')).toBe(0);
    expect(purgeStepFor('auto', undefined)).toBe(0);
    expect(purgeStepFor('auto', '2.10.0')).toBe(AUTO_PURGE_STEP);
    expect(purgeStepFor('auto', '2.15.1')).toBe(AUTO_PURGE_STEP);
    expect(purgeStepFor(0, '2.15.1')).toBe(0);
    expect(purgeStepFor(500, '2.9.10')).toBe(500);
  });
});

describe('eraseBeforePurge', () => {
  const t = useTestBus('purge-edge-test');

  /** A stream of `count` events of about 440 bytes whose bodies carry their number: two 8 MiB blocks and a bit. */
  async function numberedStream(name: string, count: number): Promise<void> {
    await t.bus.jsm.streams.add({ name, subjects: [`${name}.>`] });
    const inflight = new Set<Promise<unknown>>();
    for (let n = 1; n <= count; n++) {
      const p: Promise<unknown> = t.bus.js.publish(`${name}.chat.${n % 200}`, `BODY${String(n).padStart(9, '0')}${'x'.repeat(380)}`).then(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= 1_000) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  }

  /** Bodies numbered below `below` still in the stream's block files on the server's disk. */
  function bodiesOnDisk(name: string, below: number): number {
    // This file's own nats-server (the test environment's), or the machine's store.
    const store = t.env.nats ? path.join(t.env.nats.dir, 'js') : (process.env.NATS_STORE_DIR ?? '/var/lib/nats-server');
    const msgs = path.join(store, 'jetstream', '$G', 'streams', name, 'msgs');
    let left = 0;
    for (const block of readdirSync(msgs).filter((f) => f.endsWith('.blk'))) {
      for (const m of readFileSync(path.join(msgs, block)).toString('latin1').matchAll(/BODY(\d{9})/g)) if (Number(m[1]) < below) left++;
    }
    return left;
  }

  it('leaves no purged body in the block files, where a purge alone leaves the head of the block it ends in', async () => {
    // 8 MiB blocks hold about 19,000 of these events; a purge below 21,001 frees a tenth of the
    // second block, too little for NATS to rewrite it (bench/purge-residue.mjs).
    const [alone, erased] = [`${t.env.namespace}_edge1`, `${t.env.namespace}_edge2`];
    for (const name of [alone, erased]) await numberedStream(name, 24_000);
    expect(await purgePaced(t.bus.jsm, alone, 21_001, 0)).toBe(21_000);
    expect(bodiesOnDisk(alone, 21_001)).toBeGreaterThan(0);

    // A window of 1 MiB (about 2,400 events) instead of a block's 8 MiB: it covers this head, and
    // NATS 2.15.1 takes about 10 ms an erasure (docs/decisions.md, "Erase the edge of a purge").
    const gone = await eraseBeforePurge(t.bus.jsm, erased, 21_001, 8, 1024 * 1024);
    expect(gone).toBeGreaterThan(2_000);
    expect(gone + (await purgePaced(t.bus.jsm, erased, 21_001, 0))).toBe(21_000);
    expect(bodiesOnDisk(erased, 21_001)).toBe(0);
    // What stays is whole and readable.
    expect(bodiesOnDisk(erased, 24_001)).toBe(3_000);
    expect((await t.bus.jsm.streams.getMessage(erased, { seq: 21_001 }))?.string()).toMatch(/^BODY000021001x/);
  }, 90_000);

  it('is what a pass does where RETENTION_PURGE_EDGE says: by default on servers before 2.11, where an erasure is cheap', () => {
    expect(erasesPurgeEdge('auto', '2.9.10')).toBe(true);
    expect(erasesPurgeEdge('auto', '2.10.27')).toBe(true);
    expect(erasesPurgeEdge('auto', '2.11.0')).toBe(false);
    expect(erasesPurgeEdge('auto', '2.15.1')).toBe(false);
    expect(erasesPurgeEdge('erase', '2.15.1')).toBe(true);
    expect(erasesPurgeEdge('leave', '2.9.10')).toBe(false);
    // A whole block where erasing is cheap; what the rewrite rule needs where each erasure rewrites a block.
    expect(edgeBytesFor('2.9.10')).toBe(8 * 1024 * 1024);
    expect(edgeBytesFor('2.15.1')).toBe(5 * 1024 * 1024);
  });

  it('paces slow erasures one at a time with a rest as long as each took, and lets quick ones grow', () => {
    // NATS 2.9.10 and 2.10.27: under 1 ms each; the rounds double, up to a limit, without a rest.
    expect(erasePace(2.4, 4, 4)).toEqual({ round: 8, restMs: 0 });
    expect(erasePace(QUICK_ERASE_MS * 8, 8, 8)).toEqual({ round: 16, restMs: 0 });
    expect(erasePace(100, 256, ERASE_ROUND_MAX)).toEqual({ round: ERASE_ROUND_MAX, restMs: 0 });
    // NATS 2.15.1: four in flight took 46 ms each, one alone 12 ms.
    expect(erasePace(184, 4, 4)).toEqual({ round: 1, restMs: 184 });
    expect(erasePace(12, 1, 1)).toEqual({ round: 1, restMs: 12 });
    // Quick again (the server caught up): rounds grow again.
    expect(erasePace(0.5, 1, 1)).toEqual({ round: 2, restMs: 0 });
    // A last round shorter than its size is judged by the requests it made.
    expect(erasePace(30, 3, 16)).toEqual({ round: 1, restMs: 30 });
  });

  it('erases every sequence it is given, in rounds, and counts those already gone as done', async () => {
    const name = `${t.env.namespace}_rounds`;
    await numberedStream(name, 50);
    await deleteStreamSequences(t.bus.jsm, name, [7], 1);
    // Rounds of 3 and 6 on a quick server, single ones after a rest on a slow one.
    expect(await deleteStreamSequences(t.bus.jsm, name, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 3)).toBe(9);
    const { state } = await t.bus.jsm.streams.info(name);
    expect(state.messages).toBe(40);
    expect(state.num_deleted).toBe(10);
    expect(bodiesOnDisk(name, 12)).toBe(1); // only BODY1 is left of the first eleven
  });
});
