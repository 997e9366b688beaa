import { describe, expect, it } from 'vitest';
import { ThumbnailCache } from './cache.js';

const webp = (bytes: number) => ({ webp: Buffer.alloc(bytes) });

describe('ThumbnailCache', () => {
  it('stays within its bytes, dropping the least recently used first', () => {
    const cache = new ThumbnailCache(3_400, 60_000); // three entries of 900 bytes and their overhead
    cache.set('a', webp(900));
    cache.set('b', webp(900));
    cache.set('c', webp(900));
    expect(cache.get('a')).toBeDefined(); // a is now the most recent; b the least
    cache.set('d', webp(900));
    expect(cache.size).toBeLessThanOrEqual(3_400);
    expect(cache.get('b')).toBeUndefined();
    expect(['a', 'c', 'd'].map((k) => cache.get(k) !== undefined)).toEqual([true, true, true]);
  });

  it('keeps nothing larger than itself, forgets on delete and after the TTL', () => {
    const cache = new ThumbnailCache(1_000, 60_000);
    cache.set('huge', webp(5_000));
    expect(cache.get('huge')).toBeUndefined();
    expect(cache.size).toBe(0);
    cache.set('x', { refused: 'too many pixels' }, 0);
    expect(cache.get('x', 59_999)).toEqual({ refused: 'too many pixels' });
    expect(cache.get('x', 60_000)).toBeUndefined();
    expect(cache.size).toBe(0);
    cache.set('y', webp(10));
    cache.delete('y');
    expect(cache.get('y')).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});
