import { describe, expect, it } from 'vitest';
import { Slots, SlotsFull } from './slots.js';

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
