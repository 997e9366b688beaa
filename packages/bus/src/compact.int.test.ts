import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { deleteSubjectMessages } from './compact.js';
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
