import { DeliverPolicy, type Consumer, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';

export interface ReadOptions {
  /** The last stream sequence to read (taken from stream info before the read: writes go on meanwhile). */
  lastSeq: number;
  /** Only messages on these subjects (a wildcard filter; NATS 2.9 takes one). */
  filter?: string;
  /**
   * Messages the server keeps on the way to the reader (default 5,000). A deep buffer reads
   * fastest; a shallow one leaves NATS more room for live publishes meanwhile (a retention scan of
   * 1.1 million events: 5,000 took 13.5 s with live send→ack p99 42-51 ms, 500 took 19 s with 20 ms;
   * docs/performance.md#retention).
   */
  buffer?: number;
}

/** Messages the server keeps on the way to the reader: it sends the next ones while the reader parses. */
const READ_BUFFER = 5000;
/** How long a read waits for a message before asking the server whether anything is left. */
const IDLE_CHECK_MS = 1000;

/**
 * Reads a stream in order, from its first message to `lastSeq`, with an ordered consumer
 * (ephemeral and flow-controlled; the server drops it after five idle minutes), handing each message to `visit`.
 * `visit` returning `false` ends the read early. Returns how many messages were visited.
 *
 * A consume(), not a loop of fetch(): the server sends the next messages while the reader parses
 * (a fetch waits a round trip per batch: 1.1 million events took 15-20 % longer that way). The
 * read ends at `lastSeq`, at a message after which nothing is pending, or, when the message at
 * `lastSeq` was deleted meanwhile or the filter skips it, once the reader has waited a second with
 * everything the server delivered received and nothing pending on the server.
 *
 * For a visitor that awaits; a synchronous one reads faster with readStreamSync.
 */
export async function readStream(
  js: JetStreamClient,
  stream: string,
  options: ReadOptions,
  visit: (msg: JsMsg) => Promise<boolean | void> | boolean | void,
): Promise<number> {
  if (options.lastSeq === 0) return 0;
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All, filter_subjects: options.filter ?? '>' });
  const messages = await consumer.consume({ max_messages: options.buffer ?? READ_BUFFER });
  const iterator = messages[Symbol.asyncIterator]();
  let count = 0;
  /** The consumer sequence of the last message received. */
  let received = 0;
  /** False while a visit is under way: a slow visitor is not an idle read. */
  let waiting = true;
  let ended = false;
  const stopChecking = checkWhenIdle(
    consumer,
    () => (waiting ? received : null),
    () => {
      ended = true;
      messages.stop();
    },
  );
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done || ended) return count;
      const msg = next.value;
      received = msg.info.deliverySequence;
      if (msg.seq > options.lastSeq) return count;
      waiting = false;
      const more = await visit(msg);
      waiting = true;
      if (more === false) return count;
      count++;
      if (msg.seq === options.lastSeq || msg.info.pending === 0) return count;
    }
  } finally {
    stopChecking();
    messages.stop();
  }
}

/**
 * readStream for a visitor that does not await: the same read, ends and result, with each message
 * handed over in consume()'s callback instead of through its async iterator (no promise and no
 * turn of the event loop per message). The retention scan reads a million events this way; alone,
 * one reader took 1.09-1.38 times as many a second as through the iterator (bench/scan-read.mjs,
 * modes iterator and sync; docs/performance.md#retention). A visitor that throws ends the read with
 * its error.
 */
export async function readStreamSync(
  js: JetStreamClient,
  stream: string,
  options: ReadOptions,
  visit: (msg: JsMsg) => boolean | void,
): Promise<number> {
  if (options.lastSeq === 0) return 0;
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All, filter_subjects: options.filter ?? '>' });
  let count = 0;
  let received = 0;
  let finished = false;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = () => {
      finished = true;
      resolve();
    };
  });
  const messages = await consumer.consume({
    max_messages: options.buffer ?? READ_BUFFER,
    callback: (msg) => {
      // Messages already on their way when the read ended still arrive here.
      if (finished) return;
      received = msg.info.deliverySequence;
      if (msg.seq > options.lastSeq || visit(msg) === false) return finish();
      count++;
      if (msg.seq === options.lastSeq || msg.info.pending === 0) finish();
    },
  });
  // Between two callbacks everything received has been visited: the read is idle whenever it is asked.
  const stopChecking = checkWhenIdle(consumer, () => received, finish);
  try {
    // The consumer closes by itself when the visitor throws (with its error) or the server ends it.
    const closed = messages.closed().then((err) => {
      if (err) throw err;
    });
    await Promise.race([done, closed]);
    return count;
  } finally {
    stopChecking();
    messages.stop();
  }
}

/**
 * Every half second, while `idleAt()` gives the same consumer sequence (null: busy, not idle) for a
 * second, asks the server whether anything is left; calls `end` when nothing is pending and
 * everything it delivered has been received (by the consumer's own count: its delivered stream
 * sequence moves past deleted messages). Returns the function that stops the checks.
 */
function checkWhenIdle(consumer: Consumer, idleAt: () => number | null, end: () => void): () => void {
  let seen: number | null = null;
  let since = Date.now();
  const timer = setInterval(() => {
    const at = idleAt();
    if (at === null || at !== seen) {
      seen = at;
      since = Date.now();
      return;
    }
    if (Date.now() - since < IDLE_CHECK_MS) return;
    void consumer.info(false).then(
      (info) => {
        if (idleAt() === at && info.num_pending === 0 && info.delivered.consumer_seq <= at) end();
      },
      () => undefined, // asked again at the next check
    );
  }, IDLE_CHECK_MS / 2);
  return () => clearInterval(timer);
}
