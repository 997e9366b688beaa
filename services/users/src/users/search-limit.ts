import { RateLimited } from '@parley/http';

/**
 * A token bucket per caller for user search (it is the enumeration surface of the directory).
 * Kept in this replica's memory: a caller spread over N replicas gets at most N times the rate,
 * which is acceptable for a soft limit and costs no round trip.
 */
export class SearchLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perWindow: number,
    private readonly windowSeconds: number,
  ) {}

  take(userId: string, now = Date.now()): void {
    const rate = this.perWindow / (this.windowSeconds * 1000);
    const bucket = this.buckets.get(userId) ?? { tokens: this.perWindow, at: now };
    bucket.tokens = Math.min(this.perWindow, bucket.tokens + (now - bucket.at) * rate);
    bucket.at = now;
    if (bucket.tokens < 1) {
      throw new RateLimited(Math.ceil((1 - bucket.tokens) / rate / 1000), 'Too many searches; slow down');
    }
    bucket.tokens -= 1;
    this.buckets.set(userId, bucket);
    if (this.buckets.size > 50_000) this.buckets.clear();
  }
}
