import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { readStream } from '@parley/bus';

export interface StoredEvent {
  seq: number;
  subject: string;
  /** When JetStream stored it (ms since the epoch): the clock retention goes by. */
  storedAt: number;
  /** The `Parley-Event-Type` header. */
  type: string;
  json<T>(): T;
}

export interface ScanEnd {
  /** The first stream sequence at or after the cutoff (everything below it is older). */
  firstFreshSeq: number;
}

/**
 * Visits a stream's expired part: from its first message until the first one stored at or after
 * `cutoff` (streams are appended in time order), or its last message as of the start. Returns where
 * the fresh part starts.
 */
export async function scanExpired(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  cutoff: Date,
  visit: (event: StoredEvent) => void,
): Promise<ScanEnd> {
  const { state } = await jsm.streams.info(stream);
  let firstFreshSeq = state.last_seq + 1;
  // Nanoseconds as a double lose well under a microsecond: plenty for day-sized cutoffs.
  const cutoffNanos = cutoff.getTime() * 1e6;
  await readStream(js, stream, { lastSeq: state.messages === 0 ? 0 : state.last_seq }, (m) => {
    if (m.info.timestampNanos >= cutoffNanos) {
      firstFreshSeq = m.seq;
      return false;
    }
    visit({ seq: m.seq, subject: m.subject, storedAt: m.info.timestampNanos / 1e6, type: m.headers?.get('Parley-Event-Type') ?? '', json: <T>() => m.json<T>() });
  });
  return { firstFreshSeq };
}
