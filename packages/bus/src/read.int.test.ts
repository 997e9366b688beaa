import { describe, expect, it } from 'vitest';
import { useTestBus } from './test-bus.js';
import { readStream } from './read.js';

describe('readStream', () => {
  const t = useTestBus('read-test');

  async function streamOf(name: string, count: number): Promise<number> {
    await t.bus.jsm.streams.add({ name, subjects: [`${name}.>`] });
    let last = 0;
    // More than the read's buffer, so that the server sends while the reader reads.
    for (let i = 0; i < count; i += 500) {
      const acks = await Promise.all(Array.from({ length: Math.min(500, count - i) }, (_, k) => t.bus.js.publish(`${name}.${(i + k) % 2 === 0 ? 'even' : 'odd'}`, String(i + k))));
      last = acks.at(-1)!.seq;
    }
    return last;
  }

  const read = async (name: string, lastSeq: number, filter?: string, stopAt?: number) => {
    const seen: number[] = [];
    const count = await readStream(t.bus.js, name, { lastSeq, ...(filter ? { filter } : {}) }, (m) => {
      seen.push(Number(m.string()));
      return stopAt === undefined || seen.length < stopAt;
    });
    return { count, seen };
  };

  it('reads every message up to lastSeq in order, not the ones written after', async () => {
    const last = await streamOf('READALL', 12_000);
    await t.bus.js.publish('READALL.even', 'later');
    const { count, seen } = await read('READALL', last);
    expect(count).toBe(12_000);
    expect(seen).toEqual(Array.from({ length: 12_000 }, (_, i) => i));
  });

  it('reads everything in order through a shallow buffer (a refill every few messages)', async () => {
    const last = await streamOf('READSHALLOW', 1_000);
    const seen: number[] = [];
    const count = await readStream(t.bus.js, 'READSHALLOW', { lastSeq: last, buffer: 16 }, (m) => {
      seen.push(Number(m.string()));
    });
    expect(count).toBe(1_000);
    expect(seen).toEqual(Array.from({ length: 1_000 }, (_, i) => i));
  });

  it('ends when the message at lastSeq was deleted, and when the filter skips it', async () => {
    const last = await streamOf('READGONE', 20);
    await t.bus.jsm.streams.deleteMessage('READGONE', last, false);
    await t.bus.jsm.streams.deleteMessage('READGONE', last - 1, false);
    const gone = await read('READGONE', last);
    expect(gone.seen).toEqual(Array.from({ length: 18 }, (_, i) => i));
    // The last message (19) is odd: an "even" read never sees lastSeq.
    const even = await read('READGONE', last, 'READGONE.even');
    expect(even.seen).toEqual(Array.from({ length: 9 }, (_, i) => 2 * i));
  });

  it('ends when the messages it was told were pending are deleted before they reach it', async () => {
    // The first buffer's worth (5,000) is on its way when the read visits the first message; the
    // rest is deleted then, so the last message it gets said more was pending: the idle check ends it.
    const last = await streamOf('READRACE', 12_000);
    const seen: number[] = [];
    const started = Date.now();
    const count = await readStream(t.bus.js, 'READRACE', { lastSeq: last }, async (m) => {
      seen.push(Number(m.string()));
      if (seen.length > 1) return;
      const rest = Array.from({ length: 7_000 }, (_, i) => last - i);
      for (let i = 0; i < rest.length; i += 200) await Promise.all(rest.slice(i, i + 200).map((seq) => t.bus.jsm.streams.deleteMessage('READRACE', seq, false)));
    });
    expect(seen).toEqual(Array.from({ length: 5_000 }, (_, i) => i));
    expect(count).toBe(5_000);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('ends early when visit says so, and reads nothing from an empty range', async () => {
    const last = await streamOf('READSTOP', 50);
    const { count, seen } = await read('READSTOP', last, undefined, 7);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(count).toBe(6);
    expect((await read('READSTOP', 0)).seen).toEqual([]);
  });
});
