import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { readStreamSync } from '@parley/bus';

export interface StoredEvent {
  seq: number;
  subject: string;
  /**
   * Its age, in ms since the epoch: the event's own time (`meta.occurredAt`), or when JetStream
   * stored it if it has none. Not the stored time alone: a restore stores every event again, and
   * must not give the data a second retention period.
   */
  storedAt: number;
  json<T>(): T;
}

export interface ScanEnd {
  /** The first stream sequence at or after the cutoff (everything below it is older). */
  firstFreshSeq: number;
  /** How many messages are below it (what a purge up to it removes). */
  expired: number;
}

/**
 * Visits a stream's expired part: from its first message until the first one whose time (ageOf) is
 * at or after `cutoff` (streams are appended in time order), or its last message as of the start.
 * Returns where the fresh part starts. `buffer`: messages in flight to the reader (ReadOptions).
 */
export async function scanExpired(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  cutoff: Date,
  visit: (event: StoredEvent) => void,
  buffer?: number,
): Promise<ScanEnd> {
  const { state } = await jsm.streams.info(stream);
  let firstFreshSeq = state.last_seq + 1;
  const expired = await readStreamSync(js, stream, { lastSeq: state.messages === 0 ? 0 : state.last_seq, ...(buffer ? { buffer } : {}) }, (m) => {
    // Parsed once: the age needs it, and so does the visitor.
    const parsed = m.json<{ meta?: { occurredAt?: unknown } }>();
    const at = ageOf(parsed, m.info.timestampNanos);
    if (at >= cutoff.getTime()) {
      firstFreshSeq = m.seq;
      return false;
    }
    // No header is read: decoding them adds a third to the read (100,000 events: 1.19 s against 0.72-0.92 s).
    visit({ seq: m.seq, subject: m.subject, storedAt: at, json: <T>() => parsed as T });
  });
  return { firstFreshSeq, expired };
}

/** An event's time: its envelope's `occurredAt` when it has a valid one, else its stored time. */
export function ageOf(event: { meta?: { occurredAt?: unknown } } | null, storedNanos: number): number {
  const own = typeof event?.meta?.occurredAt === 'string' ? Date.parse(event.meta.occurredAt) : NaN;
  return Number.isFinite(own) ? own : storedNanos / 1e6;
}
