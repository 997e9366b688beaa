import { describe, expect, it } from 'vitest';
import { Batches, Slots, SlotsFull } from './slots.js';

describe('Slots', () => {
  it('runs at most `max` jobs at once, the rest in arrival order, and refuses past `maxWaiting`', async () => {
    const slots = new Slots(2, 3);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    const releases: (() => void)[] = [];
    const job = (n: number) => () =>
      new Promise<number>((resolve) => {
        running++;
        peak = Math.max(peak, running);
        order.push(n);
        releases.push(() => {
          running--;
          resolve(n);
        });
      });
    const results = [1, 2, 3, 4, 5].map((n) => slots.run(job(n)));
    await expect(slots.run(job(6))).rejects.toBeInstanceOf(SlotsFull);
    // Finish the jobs one by one, each as soon as it has started.
    for (let done = 0; done < 5; ) {
      await new Promise((r) => setTimeout(r, 1));
      const release = releases.shift();
      if (release) {
        release();
        done++;
      }
    }
    expect(await Promise.all(results)).toEqual([1, 2, 3, 4, 5]);
    expect(order).toEqual([1, 2, 3, 4, 5]);
    expect(peak).toBe(2);
    expect(slots.busy).toBe(0);
  });

  it('frees the slot of a job that fails', async () => {
    const slots = new Slots(1, 1);
    await expect(slots.run(() => Promise.reject(new Error('broken')))).rejects.toThrow('broken');
    expect(await slots.run(async () => 'next')).toBe('next');
    expect(slots.busy).toBe(0);
  });
});

describe('Batches', () => {
  it('sends a lone item at once, gathers items while the slots are busy, and takes at most maxBatch at a time in arrival order', async () => {
    const slots = new Slots(1, Number.MAX_SAFE_INTEGER);
    const batches: number[][] = [];
    const finish: (() => void)[] = [];
    const queue = new Batches<number>(slots, 3, (batch) => {
      batches.push(batch);
      return new Promise<void>((resolve) => finish.push(resolve));
    });
    const first = queue.add(1);
    expect(batches).toEqual([[1]]); // a lone item does not wait for company
    const rest = [2, 3, 4, 5, 6].map((n) => queue.add(n));
    expect(queue.waiting).toBe(5);
    expect(queue.queuedJobs).toBe(1); // one job waits for the slot, not one per item
    let settled = 0;
    void first.then(() => settled++);
    finish.shift()!();
    await first;
    await expect.poll(() => batches.length).toBe(2);
    expect(batches[1]).toEqual([2, 3, 4]);
    expect(queue.waiting).toBe(2);
    finish.shift()!();
    await expect.poll(() => batches.length).toBe(3);
    expect(batches[2]).toEqual([5, 6]);
    finish.shift()!();
    await Promise.all(rest);
    expect(settled).toBe(1);
    expect(queue.waiting).toBe(0);
    expect(slots.busy).toBe(0);
  });

  it('rejects every item of a batch whose handling failed, and goes on with the next batch', async () => {
    const slots = new Slots(1, Number.MAX_SAFE_INTEGER);
    let calls = 0;
    const queue = new Batches<string>(slots, 10, async (batch) => {
      calls++;
      if (batch.includes('bad')) throw new Error('memberships unavailable');
    });
    const [a, b] = [queue.add('ok'), queue.add('bad')];
    const c = queue.add('later');
    await expect(a).resolves.toBeUndefined();
    // 'bad' and 'later' waited together, so they fail together.
    await expect(b).rejects.toThrow('memberships unavailable');
    await expect(c).rejects.toThrow('memberships unavailable');
    await expect(queue.add('after')).resolves.toBeUndefined();
    expect(calls).toBe(3);
  });
});
