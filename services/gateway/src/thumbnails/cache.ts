/** What a thumbnail request came to: the WebP bytes, or why there are none (a 422's message). */
export type ThumbnailOutcome = { webp: Buffer } | { refused: string };

/** Bytes an entry is charged beyond its payload: the key, the map's node, the object. */
const ENTRY_OVERHEAD = 200;

/**
 * Finished thumbnails (and refusals, so a bomb or a broken file is not decoded again on every
 * request) in this gateway's memory, least recently used first out, bounded in bytes, and each
 * forgotten `ttlMs` after it was made. Never written to disk: when a file is deleted (by its user,
 * retention or erasure) no store holds a thumbnail of it. The access check runs before every
 * lookup, so a deleted file's entry is never served; `delete` and the TTL bound how long its bytes
 * stay in memory.
 */
export class ThumbnailCache {
  /** Insertion order is recency order: a hit is moved to the end, eviction takes from the start. */
  private readonly entries = new Map<string, { outcome: ThumbnailOutcome; bytes: number; expires: number }>();
  private used = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly ttlMs: number,
  ) {}

  get(id: string, now = Date.now()): ThumbnailOutcome | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    this.entries.delete(id);
    if (entry.expires <= now) {
      this.used -= entry.bytes;
      return undefined;
    }
    this.entries.set(id, entry);
    return entry.outcome;
  }

  set(id: string, outcome: ThumbnailOutcome, now = Date.now()): void {
    this.delete(id);
    const bytes = ENTRY_OVERHEAD + ('webp' in outcome ? outcome.webp.byteLength : outcome.refused.length * 2);
    // One entry larger than the whole cache is not kept (it would evict everything for nothing).
    if (bytes > this.maxBytes) return;
    this.entries.set(id, { outcome, bytes, expires: now + this.ttlMs });
    this.used += bytes;
    for (const [oldest, entry] of this.entries) {
      if (this.used <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.used -= entry.bytes;
    }
  }

  delete(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.used -= entry.bytes;
  }

  /** Bytes currently charged (payloads plus overhead), at most maxBytes. */
  get size(): number {
    return this.used;
  }
}
