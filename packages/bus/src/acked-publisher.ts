import { createInbox, headers as natsHeaders, NoRespondersError, RequestError, TimeoutError, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { JetStreamApiError, JetStreamError, type JetStreamClient, type JetStreamPublishOptions, type PubAck } from '@nats-io/jetstream';

/** What publishing to a stream needs of a JetStream client: nats.js's or the AckedPublisher. */
export type StreamPublisher = Pick<JetStreamClient, 'publish'>;

interface Waiting {
  resolve: (ack: PubAck) => void;
  reject: (error: Error) => void;
  subject: string;
  deadline: number;
}

/**
 * JetStream publishes whose acknowledgements come back on one subscription of our own, for the hot
 * path (the chat writer's appends). nats.js's `js.publish` is a request, and nats.js settles
 * every completed request by building an Error with a stack trace it then throws away
 * (`RequestOne.cancel`, no option turns it off): 5-6 % of a gateway's CPU at 1,500 msg/s
 * (docs/performance.md). This sends the same message and headers with a reply subject under the
 * connection's inbox prefix (which the bus permissions allow), and answers like `js.publish`:
 * a PubAck, a JetStreamApiError for a refusal (expected-sequence checks), JetStreamNotEnabled
 * caused by a NoRespondersError when no stream answers, a TimeoutError after `timeoutMs`. Expiry is
 * checked by one timer for all waiting publishes, not one timer each.
 */
export class AckedPublisher implements StreamPublisher {
  private static readonly byConnection = new WeakMap<NatsConnection, AckedPublisher>();

  /** The connection's publisher: one reply subscription per connection, however many writers use it. */
  static of(bus: { nc: NatsConnection; inboxPrefix?: string | undefined }): AckedPublisher {
    let publisher = AckedPublisher.byConnection.get(bus.nc);
    if (!publisher) AckedPublisher.byConnection.set(bus.nc, (publisher = new AckedPublisher(bus.nc, bus.inboxPrefix)));
    return publisher;
  }

  private readonly prefix: string;
  private readonly waiting = new Map<string, Waiting>();
  private next = 0;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    inboxPrefix: string | undefined,
    private readonly timeoutMs = 5_000,
  ) {
    this.prefix = createInbox(inboxPrefix);
    nc.subscribe(`${this.prefix}.*`, { callback: (err, msg) => (err ? this.failAll(err) : this.answer(msg)) });
  }

  publish(subject: string, payload?: string | Uint8Array, options?: Partial<JetStreamPublishOptions>): Promise<PubAck> {
    const { msgID, expect, headers, timeout, ...rest } = options ?? {};
    // Only what publishEvent uses; anything else would be silently dropped, so refuse it.
    if (Object.keys(rest).length > 0 || Object.keys(expect ?? {}).some((k) => k !== 'lastSubjectSequence')) {
      return Promise.reject(new Error(`AckedPublisher does not support ${JSON.stringify(Object.keys({ ...rest, ...expect }))}`));
    }
    const h = headers ?? natsHeaders();
    if (msgID) h.set('Nats-Msg-Id', msgID);
    const expected = expect?.lastSubjectSequence;
    if (typeof expected === 'number') h.set('Nats-Expected-Last-Subject-Sequence', String(expected));
    const token = (this.next++).toString(36);
    return new Promise<PubAck>((resolve, reject) => {
      this.waiting.set(token, { resolve, reject, subject, deadline: Date.now() + (timeout ?? this.timeoutMs) });
      try {
        this.nc.publish(subject, payload ?? '', { headers: h, reply: `${this.prefix}.${token}` });
      } catch (error) {
        this.waiting.delete(token);
        reject(error as Error);
        return;
      }
      // Not unref'd: a process that is shutting down still hears how its last publishes went.
      this.sweeper ??= setInterval(() => this.expire(), 100);
    });
  }

  private answer(msg: Msg): void {
    const token = msg.subject.slice(this.prefix.length + 1);
    const waiting = this.waiting.get(token);
    if (!waiting) return; // timed out already
    this.waiting.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      // As js.publish: "not enabled", caused by no responders (isJetStreamUnavailable reads the chain).
      waiting.reject(new JetStreamError('jetstream is not enabled', { cause: new RequestError('no responders', { cause: new NoRespondersError(waiting.subject) }) }));
      return;
    }
    try {
      const reply = msg.json<PubAck & { error?: { code: number; err_code: number; description: string } }>();
      if (reply.error) throw new JetStreamApiError(reply.error);
      if (!reply.stream) throw new JetStreamError('invalid ack response');
      waiting.resolve({ ...reply, duplicate: reply.duplicate ?? false });
    } catch (error) {
      waiting.reject(error as Error);
    }
  }

  private expire(): void {
    const now = Date.now();
    for (const [token, waiting] of this.waiting) {
      if (waiting.deadline <= now) {
        this.waiting.delete(token);
        waiting.reject(new TimeoutError());
      }
    }
    if (this.waiting.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private failAll(error: Error): void {
    for (const waiting of this.waiting.values()) waiting.reject(error);
    this.waiting.clear();
  }
}
