import type { KV } from '@nats-io/kv';
import { deleteSubjectMessages, openBucket, type Bus } from '@parley/bus';
import { declaredBuckets, subjects } from '@parley/contracts';

/** How long an offline notice's time is remembered here (a snapshot's reads take at most a second or so). */
const NOTICED_FOR_MS = 60_000;
/** Reads in flight at once for one snapshot: a user with thousands of contacts must not flood NATS. */
const READS_IN_FLIGHT = 32;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** An ISO 8601 UTC time as `Date.toISOString()` writes it (what a notice or the bucket may carry). */
export function isLastSeen(value: unknown): value is string {
  return typeof value === 'string' && ISO_UTC.test(value) && !Number.isNaN(Date.parse(value));
}

/**
 * "Last seen": when each user last went offline everywhere, one key per user id in the KV bucket
 * `<ns>_lastseen` (no TTL; its replicas those of the presence bucket). Who may learn it is decided
 * where it is sent (Presence), by the presence rules; this class only stores and reads it. Removal
 * purges the subject, so nothing of the user is left in the bucket (not even a delete marker).
 */
export class LastSeen {
  private kv: KV | undefined;
  /**
   * Times carried by the offline notices of the last minute, by user: a snapshot that read the
   * bucket just before a write sends the newer of the two, never an older time after a newer one.
   * Insertion-ordered (re-inserted on update), so the oldest are pruned from the front.
   */
  private readonly noticed = new Map<string, { at: string; noted: number }>();

  constructor(private readonly deps: { bus: Bus; namespace: string; replicas: number }) {}

  private get bucket(): string {
    return subjects.lastSeenBucket(this.deps.namespace);
  }

  async start(): Promise<void> {
    this.kv = await openBucket(this.deps.bus.nc, declaredBuckets(this.deps.namespace, this.deps.replicas).lastSeen);
  }

  async record(userId: string, at: string): Promise<void> {
    await this.kv?.put(userId, at);
  }

  async forget(userId: string): Promise<void> {
    this.noticed.delete(userId);
    await deleteSubjectMessages(this.deps.bus.jsm, `KV_${this.bucket}`, `$KV.${this.bucket}.${userId}`);
  }

  /** An offline notice said `userId` was last seen `at`. */
  noted(userId: string, at: string): void {
    const now = Date.now();
    this.noticed.delete(userId);
    this.noticed.set(userId, { at, noted: now });
    for (const [id, entry] of this.noticed) {
      if (entry.noted > now - NOTICED_FOR_MS) break;
      this.noticed.delete(id);
    }
  }

  /**
   * The newer of `read` (from the bucket) and what a notice of the last minute said. ISO UTC times
   * sort as strings. An older notice counts for nothing: entries are pruned only when another
   * notice comes, and on a quiet gateway one outlived the bucket's time, which a switch to `nobody`
   * purges there and not here; a switch back showed it to every new socket.
   */
  newest(userId: string, read: string | undefined): string | undefined {
    const entry = this.noticed.get(userId);
    const noticed = entry && entry.noted > Date.now() - NOTICED_FOR_MS ? entry.at : undefined;
    if (read === undefined) return noticed;
    return noticed !== undefined && noticed > read ? noticed : read;
  }

  /**
   * The stored times of `userIds`, as many as could be read within `timeoutMs` (best effort, like
   * the rest of the snapshot: a user whose read did not finish is left out).
   */
  async read(userIds: string[], timeoutMs: number): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    const kv = this.kv;
    if (!kv || userIds.length === 0) return found;
    let next = 0;
    let expired = false;
    const worker = async () => {
      while (!expired && next < userIds.length) {
        const userId = userIds[next++]!;
        const entry = await kv.get(userId).catch(() => null);
        const value = entry?.operation === 'PUT' ? entry.string() : undefined;
        if (!expired && isLastSeen(value)) found.set(userId, value);
      }
    };
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([Promise.all(Array.from({ length: Math.min(READS_IN_FLIGHT, userIds.length) }, worker)), deadline]);
    expired = true;
    clearTimeout(timer);
    return new Map(found);
  }
}
