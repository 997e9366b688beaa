import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';

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
 * Reads a stream in order from its first message until the first one stored at or after `cutoff`
 * (streams are appended in time order), or its last message as of the start. An ordered consumer:
 * ephemeral, flow-controlled, nothing left behind on the server. Returns where the fresh part starts.
 */
export async function scanExpired(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  cutoff: Date,
  visit: (event: StoredEvent) => void,
): Promise<ScanEnd> {
  const { state } = await jsm.streams.info(stream);
  if (state.messages === 0) return { firstFreshSeq: state.last_seq + 1 };
  // Nanoseconds as a double lose well under a microsecond: plenty for day-sized cutoffs.
  const cutoffNanos = cutoff.getTime() * 1e6;
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All, filter_subjects: '>' });
  const messages = await consumer.consume({ max_messages: 2000 });
  let firstFreshSeq = state.last_seq + 1;
  try {
    for await (const m of messages) {
      if (m.info.timestampNanos >= cutoffNanos) {
        firstFreshSeq = m.seq;
        break;
      }
      visit({ seq: m.seq, subject: m.subject, storedAt: m.info.timestampNanos / 1e6, type: m.headers?.get('Parley-Event-Type') ?? '', json: <T>() => m.json<T>() });
      if (m.seq >= state.last_seq) break;
    }
  } finally {
    await messages.close().catch(() => {});
  }
  return { firstFreshSeq };
}
