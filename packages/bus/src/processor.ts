import { AckPolicy, DeliverPolicy, type ConsumerInfo, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { context, SpanKind, trace, type Span } from '@opentelemetry/api';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import type { Bus } from './connect.js';
import type { ProjectorHooks } from './faults.js';
import type { CheckpointStore, Lease, Leadership, ParseResult, PositionedEvent } from './processor-store.js';
import { nextOnSubject } from './publish.js';
import { isNotFound } from './streams.js';
import { contextFrom, tracer } from './trace.js';

/** How long a stall seen once must last before the processor restarts its consumer (ms). */
const STALL_CONFIRM_MS = 1_000;

export interface ProcessorOptions<E> {
  bus: Bus;
  /** Unique per service; names the durable consumer (and the store's checkpoint). */
  name: string;
  stream: string;
  filterSubject: string;
  parse: (value: unknown) => ParseResult<E>;
  leadership: Leadership;
  store: CheckpointStore<E>;
  /** Runs after commit and acks (cache invalidation, counters); its failures are logged, never retried. */
  afterCommit?: ((events: E[]) => Promise<void>) | undefined;
  log: Logger;
  metrics?: Metrics | undefined;
  /** Most events applied in one batch. */
  batchSize?: number | undefined;
  /** How long JetStream waits for an ack before redelivering (ms). */
  ackWaitMs?: number | undefined;
  /**
   * How long the first event of a batch may wait for others before the batch is applied (ms;
   * 0 applies at once). A batch costs the store one commit whatever its size.
   */
  lingerMs?: number | undefined;
  /** Attempts for an event whose apply fails with a non-transient error before it is terminated. */
  maxAttempts?: number | undefined;
  /**
   * How long a leader may receive nothing, with nothing to apply, before it asks JetStream whether
   * events wait for it (and restarts its consumer if they do) (ms).
   */
  stallMs?: number | undefined;
  /** Fault injection for tests (faults.ts): called at each step of a batch. */
  hooks?: ProjectorHooks | undefined;
}

type Item<E> = { msg: JsMsg; event: E };

/**
 * Applies one stream (filtered) to a store, knowing nothing of the store but its interfaces
 * (processor-store.ts). The contract, which every projection relies on (the store's half, atomic
 * and idempotent batches, is documented on CheckpointStore):
 *
 * - Durable pull consumer, explicit acks, ack only after the store committed the batch.
 * - Gap-free: a new leader recreates the durable consumer at checkpoint + 1, and a jump in the
 *   delivery sequence (a delivery lost to a dead leader or a NATS reconnect) restarts it there,
 *   so an event is never overtaken by a newer one and then skipped as applied.
 * - Ordered: one leader per processor (the store's Leadership, so replicas stand by) applies events
 *   strictly in stream order. A failing event is retried in place with backoff (not nak'ed: a nak
 *   would let later events of the same chat overtake it), keeping its ack deadline alive meanwhile.
 * - Poison (undecodable, unknown type, or failing `maxAttempts` times for a non-transient reason)
 *   is terminated with `term()`, logged with its stream sequence and event id, and counted in
 *   `projector_poison_messages_total`: never silently dropped, never blocking the stream forever.
 *   A transient failure (the store says which) is retried without limit.
 * - Micro-batching: whatever has arrived within `lingerMs` of the batch's first event is applied
 *   in one batch (up to `batchSize`, which starts a batch at once), so events at a steady rate
 *   cost one commit per linger instead of one each.
 *
 * Log messages and metrics say "projector": every processor today is one (@parley/projector-pg),
 * and operations.md lists them under that name.
 */
export class Processor<E extends { meta?: { eventId?: string } }> {
  private readonly batchSize: number;
  private readonly ackWaitMs: number;
  private readonly maxAttempts: number;
  private readonly lingerMs: number;
  private readonly stallMs: number;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly queue: JsMsg[] = [];
  private messages: ConsumerMessages | undefined;
  private lease: Lease | undefined;
  private draining: Promise<void> | undefined;
  private stopped = false;
  private lagTimer: NodeJS.Timeout | undefined;
  private leaderLoop: Promise<void> | undefined;
  /**
   * The highest stream sequence this leader has dealt with (applied, found applied, or terminated
   * as poison), from the checkpoint on: where the stall check asks the stream for the next event.
   */
  private handledSeq = 0;
  /** Events applied by this instance (skipped redeliveries excluded). */
  applied = 0;

  constructor(private readonly o: ProcessorOptions<E>) {
    this.batchSize = o.batchSize ?? 200;
    this.ackWaitMs = o.ackWaitMs ?? 30_000;
    this.maxAttempts = o.maxAttempts ?? 5;
    // A lingering batch is not acked yet: keep the wait far inside the ack wait, or JetStream
    // redelivers what is still waiting (harmless, the checkpoint skips it, but wasted).
    this.lingerMs = Math.min(o.lingerMs ?? 0, this.ackWaitMs / 4);
    this.stallMs = o.stallMs ?? 10_000;
  }

  get name(): string {
    return this.o.name;
  }

  /** Starts competing for leadership and, once leader, consuming. Returns at once. */
  start(): void {
    this.leaderLoop = this.runLeadership().catch((error) => {
      this.o.log.error({ err: error, projector: this.name }, 'projector stopped on an unexpected error');
    });
    if (this.o.metrics) {
      // Lag, as JetStream sees it (whichever replica leads): events stored but not yet acknowledged.
      this.lagTimer = setInterval(() => void this.reportLag(), 5_000);
      this.lagTimer.unref();
    }
  }

  private async reportLag(): Promise<void> {
    const info = await this.o.bus.jsm.consumers.info(this.o.stream, this.name).catch(() => null);
    if (info) this.o.metrics?.projectorPending.set({ projector: this.name }, info.num_pending + info.num_ack_pending);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.lagTimer);
    clearTimeout(this.lingerTimer);
    await this.messages?.close().catch(() => {});
    await this.draining;
    // Whatever was delivered but not applied goes back to JetStream now rather than after ack_wait.
    for (const msg of this.queue.splice(0)) msg.nak();
    await this.releaseLeadership();
    await this.leaderLoop;
  }

  /**
   * Replays the stream: takes leadership (refused while another process, the running service,
   * holds it), lets `clear` empty what was applied (the store's state and checkpoint), deletes the
   * durable consumer, applies every event, and returns once the consumer has nothing pending.
   */
  async rebuild(clear: () => Promise<void>, timeoutMs = 30 * 60_000): Promise<number> {
    if (!(await this.acquireLeadership())) {
      throw new Error(`projector ${this.name} is running in another process: stop that service before rebuilding`);
    }
    const { jsm } = this.o.bus;
    await clear();
    await jsm.consumers.delete(this.o.stream, this.name).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
    const consuming = this.consume();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await sleep(100);
      const info = await jsm.consumers.info(this.o.stream, this.name).catch(() => null);
      if (info && info.num_pending === 0 && info.num_ack_pending === 0 && this.queue.length === 0 && !this.draining) break;
      if (Date.now() > deadline) throw new Error(`rebuild of ${this.name} did not finish within ${timeoutMs} ms`);
    }
    await this.stop();
    await consuming;
    return this.applied;
  }

  /**
   * Read-your-writes barrier for lookups that missed: resolves once everything stored in the
   * stream before the call has been applied (or after `timeoutMs`, returning false). It reads the
   * shared consumer's state, so it works whichever replica is the leader.
   */
  async caughtUp(timeoutMs = 2_000): Promise<boolean> {
    const { jsm } = this.o.bus;
    const target = (await jsm.streams.info(this.o.stream)).state.last_seq;
    const deadline = Date.now() + timeoutMs;
    for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
      const info = await jsm.consumers.info(this.o.stream, this.name).catch(() => null);
      if (info && (info.ack_floor.stream_seq >= target || (info.num_pending === 0 && info.num_ack_pending === 0))) return true;
      if (Date.now() >= deadline) return false;
      await sleep(delay);
    }
  }

  /**
   * (Re)creates the durable consumer so that it delivers from just after the checkpoint. Done each
   * time this instance starts consuming (a new leader) and after a delivery gap. The store's
   * checkpoint is the truth about what is applied; JetStream's pending state is not: deliveries made
   * to a leader that died (or lost in a NATS reconnect) are redelivered only after ack_wait, after
   * newer events, and those newer events would move the checkpoint past them, so they would be
   * skipped as "already applied". Found by e2e/faults/projector.test.ts (a standby taking over from
   * a killed leader lost its in-flight batch).
   */
  private async resetConsumer(): Promise<void> {
    const { jsm } = this.o.bus;
    const checkpoint = await this.o.store.loadCheckpoint();
    this.handledSeq = checkpoint;
    await jsm.consumers.delete(this.o.stream, this.name).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
    await jsm.consumers.add(this.o.stream, {
      durable_name: this.name,
      ack_policy: AckPolicy.Explicit,
      ...(checkpoint > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: checkpoint + 1 } : { deliver_policy: DeliverPolicy.All }),
      filter_subject: this.o.filterSubject,
      ack_wait: this.ackWaitMs * 1_000_000,
      max_ack_pending: this.batchSize * 4,
      max_deliver: -1,
    });
  }

  private async runLeadership(): Promise<void> {
    while (!this.stopped) {
      try {
        if (await this.acquireLeadership()) {
          await this.consume();
          if (this.stopped) return;
          // Consumption ended without stop(): leadership was lost (e.g. Postgres restarted and
          // ended the lock session). Give it up and compete again, so the projection catches up
          // once the store is back instead of staying stopped.
          await this.releaseLeadership();
          this.messages = undefined;
        }
      } catch (error) {
        this.o.log.warn({ err: (error as Error).message, projector: this.name }, 'projector not started yet; retrying');
        await this.releaseLeadership();
      }
      await sleep(2_000);
    }
  }

  private async acquireLeadership(): Promise<boolean> {
    const lease = await this.o.leadership.acquire(() => {
      // Another replica may take over now: stop consuming at once.
      if (!this.stopped) {
        this.o.log.error({ projector: this.name }, 'projector lost its leadership session; stopping consumption');
        void this.messages?.close();
      }
    });
    this.lease = lease;
    return lease !== undefined;
  }

  private async releaseLeadership(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    await lease?.release().catch(() => {});
  }

  private async consume(): Promise<void> {
    while (!this.stopped) {
      await this.resetConsumer();
      const consumer = await this.o.bus.js.consumers.get(this.o.stream, this.name);
      this.o.log.info({ projector: this.name, stream: this.o.stream }, 'projector consuming');
      // One leader, one consumer: its delivery sequence goes up by exactly one per message it gets
      // (redeliveries included). A jump means a delivery never reached us, and the event it
      // carried would come back only after newer ones: start again from the checkpoint instead.
      let expected: number | undefined;
      let restarting = false;
      let lastDeliveryAt = Date.now();
      const restart = (reason: string, detail: object) => {
        if (restarting) return;
        restarting = true;
        this.o.log.warn({ projector: this.name, ...detail }, `projector ${reason}; restarting from its checkpoint`);
        void messages.close();
      };
      const messages = await consumer.consume({
        max_messages: this.batchSize * 2,
        callback: (msg) => {
          if (restarting) return;
          lastDeliveryAt = Date.now();
          const delivered = msg.info.deliverySequence;
          if (expected !== undefined && delivered !== expected) {
            restart('saw a delivery gap', { expected, delivered, streamSeq: msg.seq });
            return;
          }
          expected = delivered + 1;
          this.queue.push(msg);
          this.kick();
        },
      });
      this.messages = messages;
      // stop() may have run while this consumer was being set up, closing only the previous one.
      if (this.stopped) void messages.close();
      void this.watchStatus(messages, restart);
      const idle = () => !restarting && this.queue.length === 0 && !this.draining && Date.now() - lastDeliveryAt >= this.stallMs;
      const watchdog = setInterval(() => {
        if (idle()) void this.checkStalled(idle, (reason, detail) => restart(reason, detail));
      }, this.stallMs);
      watchdog.unref();
      try {
        await messages.closed();
      } finally {
        clearInterval(watchdog);
      }
      if (!restarting || this.stopped) return;
      // What is queued comes again from the new consumer; the batch being applied finishes first.
      this.queue.splice(0);
      await this.draining;
    }
  }

  /**
   * The client library recovers a pull consumer from reconnects and missed heartbeats by itself,
   * but not from the consumer vanishing (a NATS cluster whose nodes all restarted): it waits for
   * the consumer to come back, which it never does. Found by e2e/faults/cluster.test.ts: the
   * projection stopped for good while the stream kept taking messages.
   */
  private async watchStatus(messages: ConsumerMessages, restart: (reason: string, detail: object) => void): Promise<void> {
    for await (const status of messages.status()) {
      if (status.type === 'consumer_not_found' || status.type === 'consumer_deleted' || status.type === 'stream_not_found') {
        restart(`consumer lost (${status.type})`, {});
        return;
      }
    }
  }

  /**
   * Nothing delivered for `stallMs` and nothing being applied: if events wait for this consumer (or
   * it was lost), the pull went nowhere; only a fresh consumer from the checkpoint gets things moving
   * again. Quiet streams pass, and so does a NATS that cannot answer (the library's own reconnect
   * handling covers that; the failed check is logged).
   *
   * What waits is asked twice: of the consumer (events pending or delivered and unacknowledged) and
   * of the stream's leader (the next event on our subjects after the last one handled). The consumer
   * alone is not enough: on a NATS 2.9 cluster a consumer whose leader moved in a rolling restart can
   * report nothing pending while the stream holds newer events (nats-server issues #4189, #5679),
   * and it never delivers them. Found by e2e/faults/cluster.test.ts: acknowledged messages missing
   * from history for good, with no log line, the projection silent from the last restart on.
   */
  private async checkStalled(idle: () => boolean, restart: (reason: string, detail: object) => void): Promise<void> {
    try {
      const first = await this.waiting();
      if (!counts(first.info) && first.next === undefined) return;
      // Asked twice, a second apart: an event published just as the first answer was made can be
      // counted there as delivered while it is still on its way to us. It arrives within the
      // second (idle() turns false); a consumer that is really stuck looks the same both times.
      // (Without this a quiet projector restarted on the first event after ten idle seconds, and
      // the new consumer's ack floor stayed at 0, which held a retention pass forever.)
      await new Promise((resolve) => setTimeout(resolve, STALL_CONFIRM_MS));
      if (!idle()) return;
      const second = await this.waiting();
      // Nothing is in hand (the queue is empty, every batch acked), so anything JetStream counts as
      // delivered and unacknowledged never arrived.
      if (counts(first.info) && counts(second.info) && second.info?.delivered.consumer_seq === first.info?.delivered.consumer_seq) {
        restart('received nothing while events wait', { pending: second.info?.num_pending, ackPending: second.info?.num_ack_pending, stallMs: this.stallMs });
      } else if (second.next !== undefined && first.next !== undefined) {
        restart('found events in the stream that its consumer does not deliver', {
          handledSeq: this.handledSeq,
          consumerAnswered: second.info !== undefined,
          nextStreamSeq: second.next,
          consumerDelivered: second.info?.delivered.stream_seq,
          consumerAckFloor: second.info?.ack_floor.stream_seq,
          stallMs: this.stallMs,
        });
      }
    } catch (error) {
      if (isNotFound(error)) restart('consumer lost (not found)', {});
      else this.o.log.warn({ projector: this.name, err: (error as Error).message }, 'projector could not check whether it is stalled');
    }
  }

  /**
   * What waits for this processor: its consumer's state (`info`, undefined when the consumer did
   * not answer: one without a leader), and, only when that counts nothing waiting, `next`: the
   * stream sequence of the next event on its subjects after `handledSeq`, as the stream's leader
   * answers (undefined: none).
   */
  private async waiting(): Promise<{ info: ConsumerInfo | undefined; next: number | undefined }> {
    const { jsm } = this.o.bus;
    const info = await jsm.consumers.info(this.o.stream, this.name).catch((error: unknown) => {
      if (isNotFound(error)) throw error;
      return undefined;
    });
    if (counts(info)) return { info, next: undefined };
    const next = await nextOnSubject(jsm, this.o.stream, this.o.filterSubject, this.handledSeq + 1);
    return { info, next: next?.seq };
  }

  private kick(): void {
    if (this.draining || this.stopped) return;
    if (this.lingerMs > 0 && this.queue.length < this.batchSize) {
      this.lingerTimer ??= setTimeout(() => {
        this.lingerTimer = undefined;
        this.startDrain();
      }, this.lingerMs);
      return;
    }
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.startDrain();
  }

  private startDrain(): void {
    if (this.draining || this.stopped) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      if (this.queue.length > 0 && !this.stopped) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.stopped) {
      const batch = this.queue.splice(0, this.batchSize);
      const items: Item<E>[] = [];
      for (const msg of batch) {
        const parsed = this.decode(msg);
        if (parsed.ok) items.push({ msg, event: parsed.event });
        else this.poison(msg, parsed.reason, undefined);
      }
      if (items.length === 0) continue;
      try {
        await this.applyBatch(items);
      } catch {
        // Isolate the failure: apply one by one, so good events before a bad one still land.
        for (const item of items) {
          if (this.stopped) return;
          await this.applyWithRetry(item);
        }
      }
    }
  }

  private decode(msg: JsMsg): ParseResult<E> {
    let value: unknown;
    try {
      value = msg.json();
    } catch {
      return { ok: false, reason: 'not JSON' };
    }
    return this.o.parse(value);
  }

  private async applyWithRetry(item: Item<E>): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await this.applyBatch([item]);
        return;
      } catch (error) {
        const transient = this.o.store.isTransient(error);
        this.o.metrics?.projectorEvents.inc({ projector: this.name, outcome: 'retry' });
        if (!transient && attempt >= this.maxAttempts) {
          this.poison(item.msg, (error as Error).message, item.event);
          return;
        }
        const delay = Math.min(100 * 2 ** Math.min(attempt, 6), 5_000);
        this.o.log.warn(
          { projector: this.name, streamSeq: item.msg.seq, attempt, transient, err: (error as Error).message, retryInMs: delay },
          'projection failed; retrying',
        );
        item.msg.working();
        await sleep(delay);
      }
    }
  }

  private async applyBatch(items: Item<E>[]): Promise<void> {
    const first = items[0];
    // A consumer span in the trace of the (first) event's publisher; the store's statements become
    // its children (packages/pg instruments Postgres), so one trace reaches the insert.
    const span = tracer.startSpan(
      `process ${this.name}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'nats',
          'messaging.operation.type': 'process',
          'messaging.destination.name': this.o.stream,
          'messaging.consumer.group.name': this.name,
          'messaging.batch.message_count': items.length,
        },
      },
      contextFrom(first?.msg.headers),
    );
    await context.with(trace.setSpan(context.active(), span), () => this.commitBatch(items, span));
  }

  private async commitBatch(items: Item<E>[], span: Span): Promise<void> {
    const { hooks } = this.o;
    const seqs = hooks ? items.map((i) => i.msg.seq) : [];
    await hooks?.received?.(seqs);
    let applied: PositionedEvent<E>[];
    try {
      applied = await this.o.store.applyBatch(
        items.map(({ msg, event }) => ({ event, position: { streamSeq: msg.seq, subject: msg.subject } })),
        () => hooks?.beforeCommit?.(seqs),
      );
    } catch (error) {
      span.end();
      throw error;
    }
    await hooks?.afterCommit?.(seqs);
    for (const { msg } of items) msg.ack();
    this.handledSeq = Math.max(this.handledSeq, items.at(-1)!.msg.seq);
    span.end();
    this.applied += applied.length;
    this.o.metrics?.projectorEvents.inc({ projector: this.name, outcome: 'applied' }, applied.length);
    if (items.length > applied.length) {
      this.o.metrics?.projectorEvents.inc({ projector: this.name, outcome: 'skipped' }, items.length - applied.length);
    }
    if (applied.length > 0 && this.o.afterCommit && !hooks?.skipAfterCommit?.(this.name)) {
      await this.o.afterCommit(applied.map((a) => a.event)).catch((error: unknown) => {
        this.o.log.warn({ err: (error as Error).message, projector: this.name }, 'after-commit step failed');
      });
    }
  }

  private poison(msg: JsMsg, reason: string, event: E | undefined): void {
    // No reason argument: NATS 2.9 does not parse `+TERM <reason>` and would leave the message
    // pending (found by packages/projector-pg/src/projector.int.test.ts). The reason goes to the log instead.
    msg.term();
    this.handledSeq = Math.max(this.handledSeq, msg.seq);
    this.o.metrics?.projectorPoison.inc({ projector: this.name });
    this.o.log.error(
      { projector: this.name, stream: this.o.stream, streamSeq: msg.seq, subject: msg.subject, eventId: event?.meta?.eventId, reason },
      'poison event terminated: it will not be projected',
    );
  }
}

/** The consumer counts events pending or delivered and unacknowledged. */
function counts(info: ConsumerInfo | undefined): boolean {
  return info !== undefined && (info.num_pending > 0 || info.num_ack_pending > 0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
