import { describe, expect, it } from 'vitest';
import { RateLimited } from '@parley/http';
import { SearchLimiter } from './search-limit.js';

describe('SearchLimiter', () => {
  it('allows the rate per window, then answers rate_limited with a Retry-After', () => {
    const limiter = new SearchLimiter(3, 10);
    for (let i = 0; i < 3; i++) limiter.take('a', 1_000);
    let error: unknown;
    try {
      limiter.take('a', 1_000);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RateLimited);
    expect((error as RateLimited).retryAfterSeconds).toBe(4);
    // Another caller has a bucket of its own.
    expect(() => limiter.take('b', 1_000)).not.toThrow();
  });

  it('refills continuously', () => {
    const limiter = new SearchLimiter(2, 10);
    limiter.take('a', 0);
    limiter.take('a', 0);
    expect(() => limiter.take('a', 1_000)).toThrow(RateLimited);
    // 2 tokens per 10 s: one token after 5 s.
    expect(() => limiter.take('a', 5_000)).not.toThrow();
    expect(() => limiter.take('a', 5_000)).toThrow(RateLimited);
  });
});
