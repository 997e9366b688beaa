import { DeliverPolicy, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';

export interface ReadOptions {
  /** The last stream sequence to read (taken from stream info before the read: writes go on meanwhile). */
  lastSeq: number;
  /** Only messages on these subjects (a wildcard filter; NATS 2.9 takes one). */
  filter?: string;
}

/**
 * Reads a stream in order, from its first message to `lastSeq`, with an ordered consumer
 * (ephemeral, flow-controlled, nothing left behind on the server), handing each message to `visit`.
 * `visit` returning `false` ends the read early. Returns how many messages were visited.
 *
 * Fetches batches rather than an endless consume(): an empty batch means nothing is left to read,
 * even when the message at `lastSeq` was deleted meanwhile or the filter skips it.
 */
export async function readStream(
  js: JetStreamClient,
  stream: string,
  options: ReadOptions,
  visit: (msg: JsMsg) => Promise<boolean | void> | boolean | void,
): Promise<number> {
  if (options.lastSeq === 0) return 0;
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All, filter_subjects: options.filter ?? '>' });
  let count = 0;
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 1000, expires: 2_000 });
    let received = 0;
    for await (const msg of batch) {
      received++;
      // Leaving the loop stops the batch (calling close() from inside the loop would wait forever).
      if (msg.seq > options.lastSeq) return count;
      if ((await visit(msg)) === false) return count;
      count++;
      if (msg.seq === options.lastSeq || msg.info.pending === 0) return count;
    }
    if (received === 0) return count;
  }
}
