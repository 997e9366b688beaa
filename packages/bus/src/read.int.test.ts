import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { useTestBus } from './test-bus.js';
import { readStream, readStreamSync } from './read.js';

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

  // The same read through consume()'s async iterator and through its callback.
  describe.each([
    ['through the iterator', 'READ', readStream],
    ['through the callback (readStreamSync)', 'SYNC', readStreamSync],
  ] as const)('%s', (_name, prefix, reader) => {
    const read = async (name: string, lastSeq: number, filter?: string, stopAt?: number) => {
      const seen: number[] = [];
      const count = await reader(t.bus.js, name, { lastSeq, ...(filter ? { filter } : {}) }, (m) => {
        seen.push(Number(m.string()));
        return stopAt === undefined || seen.length < stopAt;
      });
      return { count, seen };
    };

    it('reads every message up to lastSeq in order, not the ones written after', async () => {
      const last = await streamOf(`${prefix}ALL`, 12_000);
      await t.bus.js.publish(`${prefix}ALL.even`, 'later');
      const { count, seen } = await read(`${prefix}ALL`, last);
      expect(count).toBe(12_000);
      expect(seen).toEqual(Array.from({ length: 12_000 }, (_, i) => i));
    });

    it('reads everything in order through a shallow buffer (a refill every few messages)', async () => {
      const last = await streamOf(`${prefix}SHALLOW`, 1_000);
      const seen: number[] = [];
      const count = await reader(t.bus.js, `${prefix}SHALLOW`, { lastSeq: last, buffer: 16 }, (m) => {
        seen.push(Number(m.string()));
      });
      expect(count).toBe(1_000);
      expect(seen).toEqual(Array.from({ length: 1_000 }, (_, i) => i));
    });

    it('ends when the message at lastSeq was deleted, and when the filter skips it', async () => {
      const last = await streamOf(`${prefix}GONE`, 20);
      await t.bus.jsm.streams.deleteMessage(`${prefix}GONE`, last, false);
      await t.bus.jsm.streams.deleteMessage(`${prefix}GONE`, last - 1, false);
      const gone = await read(`${prefix}GONE`, last);
      expect(gone.seen).toEqual(Array.from({ length: 18 }, (_, i) => i));
      // The last message (19) is odd: an "even" read never sees lastSeq.
      const even = await read(`${prefix}GONE`, last, `${prefix}GONE.even`);
      expect(even.seen).toEqual(Array.from({ length: 9 }, (_, i) => 2 * i));
    });

    it('ends early when visit says so, and reads nothing from an empty range', async () => {
      const last = await streamOf(`${prefix}STOP`, 50);
      const { count, seen } = await read(`${prefix}STOP`, last, undefined, 7);
      expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6]);
      expect(count).toBe(6);
      expect((await read(`${prefix}STOP`, 0)).seen).toEqual([]);
    });
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

  it('readStreamSync ends when the messages it was told were pending are purged before they reach it', async () => {
    // The first 5,000 (a buffer's worth) on one subject, 7,000 more on another. The visitor blocks
    // the reader at the first message (no refill can go out) while another process purges the
    // second subject; the last message that arrives then says 7,000 more were pending, so only
    // the idle check can end the read.
    const name = 'SYNCRACE';
    await t.bus.jsm.streams.add({ name, subjects: [`${name}.>`] });
    let last = 0;
    for (let i = 0; i < 12_000; i += 500) {
      const acks = await Promise.all(Array.from({ length: 500 }, (_, k) => t.bus.js.publish(`${name}.${i + k < 5_000 ? 'head' : 'tail'}`, String(i + k))));
      last = acks.at(-1)!.seq;
    }
    const seedFile = t.env.busIdentity?.nkeyFile;
    const purgeTail = [
      "import { connect } from '@nats-io/transport-node';",
      "import { nkeyAuthenticator } from '@nats-io/nats-core';",
      "import { jetstreamManager } from '@nats-io/jetstream';",
      "import { readFileSync } from 'node:fs';",
      "const seed = process.env.SEED_FILE ? new TextEncoder().encode(readFileSync(process.env.SEED_FILE, 'utf8').trim()) : null;",
      'const nc = await connect({ servers: process.env.NATS_URL, ...(seed ? { authenticator: nkeyAuthenticator(seed) } : {}) });',
      `await (await jetstreamManager(nc)).streams.purge('${name}', { filter: '${name}.tail' });`,
      'await nc.close();',
    ].join('\n');
    const seen: number[] = [];
    const started = Date.now();
    const count = await readStreamSync(t.bus.js, name, { lastSeq: last }, (m) => {
      seen.push(Number(m.string()));
      if (seen.length === 1) {
        execFileSync(process.execPath, ['--input-type=module', '-e', purgeTail], { env: { ...process.env, NATS_URL: t.env.natsUrl, SEED_FILE: seedFile ?? '' } });
      }
    });
    expect(seen).toEqual(Array.from({ length: 5_000 }, (_, i) => i));
    expect(count).toBe(5_000);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('readStreamSync ends with the error its visitor throws, and stops reading', async () => {
    const last = await streamOf('SYNCTHROW', 6_000);
    const seen: number[] = [];
    const read = readStreamSync(t.bus.js, 'SYNCTHROW', { lastSeq: last }, (m) => {
      seen.push(Number(m.string()));
      if (seen.length === 100) throw new Error('visitor failed at 100');
    });
    await expect(read).rejects.toThrow('visitor failed at 100');
    expect(seen).toHaveLength(100);
  });
});
