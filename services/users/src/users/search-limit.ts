import { RateLimited } from '@parley/http';

/** Callers tracked before idle buckets are swept (a bucket is ~100 bytes: ~5 MB at the cap). */
const MAX_TRACKED = 50_000;

/**
 * A token bucket per caller for user search (GET /users?query=), the enumeration surface of the
 * directory: `perWindow` requests, refilled continuously over `windowSeconds`
 * (USER_SEARCH_RATE / USER_SEARCH_WINDOW_SECONDS).
 *
 * Kept in this replica's memory, on purpose: a caller spread over N replicas gets at most N times
 * the rate, which is acceptable for a soft anti-scraping limit and costs no round trip, and the
 * limit keeps working when Redis is down. A restart forgets the buckets (everyone starts full).
 */
export class SearchLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perWindow: number,
    private readonly windowSeconds: number,
  ) {}

  /** Takes one token for `userId` or throws RateLimited (429 with Retry-After). */
  take(userId: string, now = Date.now()): void {
    const rate = this.perWindow / (this.windowSeconds * 1000);
    const bucket = this.buckets.get(userId) ?? { tokens: this.perWindow, at: now };
    bucket.tokens = Math.min(this.perWindow, bucket.tokens + (now - bucket.at) * rate);
    bucket.at = now;
    this.buckets.set(userId, bucket);
    if (bucket.tokens < 1) {
      throw new RateLimited(Math.max(1, Math.ceil((1 - bucket.tokens) / rate / 1000)), 'Too many searches; slow down');
    }
    bucket.tokens -= 1;
    if (this.buckets.size > MAX_TRACKED) this.sweep(now);
  }

  /** Forgets callers idle for a whole window: their buckets are full, the same as no bucket. */
  private sweep(now: number): void {
    const idleMs = this.windowSeconds * 1000;
    for (const [id, bucket] of this.buckets) if (now - bucket.at >= idleMs) this.buckets.delete(id);
  }
}
