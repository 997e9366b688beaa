import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import pg from 'pg';
import { isTransientPgError } from '@parley/pg';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import type { Bus } from './connect.js';
import { isNotFound } from './streams.js';
import { context, SpanKind, trace, type Span } from '@opentelemetry/api';
import { contextFrom, tracer } from './trace.js';
import type { ProjectorHooks } from './faults.js';

/** Where an event sits in its stream; stored with the rows it produced. */
export interface Position {
  streamSeq: number;
  subject: string;
}

export interface Projection<E> {
  /** Unique per service; names the durable consumer and the checkpoint row. */
  name: string;
  apply(event: E, tx: pg.PoolClient, position: Position): Promise<void>;
  /**
   * Optional bulk path: applies several events (in stream order) in one go, e.g. with multi-row
   * inserts. Must have the same effect as calling `apply` for each in turn.
   */
  applyMany?(items: { event: E; position: Position }[], tx: pg.PoolClient): Promise<void>;
  /** Runs after commit (cache invalidation, counters); its failures are logged, never retried. */
  afterCommit?(events: E[]): Promise<void>;
}

export type ParseResult<E> = { ok: true; event: E } | { ok: false; reason: string };

export interface ProjectorOptions<E> {
  bus: Bus;
  stream: string;
  filterSubject: string;
  pool: pg.Pool;
  /** Schema-qualified table `(projector text primary key, stream_seq bigint)` in the service's schema. */
  checkpointTable: string;
  parse: (value: unknown) => ParseResult<E>;
  projection: Projection<E>;
  /** The connection string used for the leadership lock (a dedicated session). */
  databaseUrl: string;
  log: Logger;
  metrics?: Metrics;
  /** Most events applied in one transaction. */
  batchSize?: number;
  /** How long JetStream waits for an ack before redelivering (ms). */
  ackWaitMs?: number;
  /**
   * How long the first event of a batch may wait for others before the batch is applied (ms;
   * 0 applies at once). A batch costs a transaction and four round trips whatever its size.
   */
  lingerMs?: number;
  /** Attempts for an event whose apply fails with a non-transient error before it is terminated. */
  maxAttempts?: number;
  /** Fault injection for tests (faults.ts): called at each step of a batch. */
  hooks?: ProjectorHooks;
}

type Item<E> = { msg: JsMsg; event: E };

/**
 * Projects one stream (filtered) into Postgres. The contract, which every projection relies on:
 *
 * - Durable pull consumer, explicit acks, ack only after the Postgres transaction committed.
 * - Idempotent: the transaction that writes the rows also advances this projector's checkpoint
 *   (the last applied stream sequence); an event at or below the checkpoint is acked and skipped.
 *   So a crash between commit and ack (redelivery) never yields a second row.
 * - Gap-free: a new leader recreates the durable consumer at checkpoint + 1, and a jump in the
 *   delivery sequence (a delivery lost to a dead leader or a NATS reconnect) restarts it there,
 *   so an event is never overtaken by a newer one and then skipped as applied.
 * - Ordered: one leader per projector (a Postgres advisory lock, so replicas stand by) applies events
 *   strictly in stream order. A failing event is retried in place with backoff (not nak'ed: a nak
 *   would let later events of the same chat overtake it), keeping its ack deadline alive meanwhile.
 * - Poison (undecodable, unknown type, or failing `maxAttempts` times for a non-transient reason)
 *   is terminated with `term()`, logged with its stream sequence and event id, and counted in
 *   `projector_poison_messages_total`: never silently dropped, never blocking the stream forever.
 * - Micro-batching: whatever has arrived within `lingerMs` of the batch's first event is applied
 *   in one transaction (up to `batchSize`, which starts a batch at once), so events at a
 *   steady rate cost one commit per linger instead of one each.
 */
export class Projector<E extends { meta?: { eventId?: string } }> {
  private readonly batchSize: number;
  private readonly ackWaitMs: number;
  private readonly maxAttempts: number;
  private readonly lingerMs: number;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** The projector's name as a SQL string literal (it is ours, but quoted properly all the same). */
  private readonly nameLiteral: string;
  private readonly queue: JsMsg[] = [];
  private messages: ConsumerMessages | undefined;
  private lockClient: pg.Client | undefined;
  private draining: Promise<void> | undefined;
  private stopped = false;
  private lagTimer: NodeJS.Timeout | undefined;
  private leaderLoop: Promise<void> | undefined;
  /** Events applied by this instance (skipped redeliveries excluded). */
  applied = 0;

  constructor(private readonly o: ProjectorOptions<E>) {
    this.nameLiteral = `'${o.projection.name.replace(/'/g, "''")}'`;
    this.batchSize = o.batchSize ?? 200;
    this.ackWaitMs = o.ackWaitMs ?? 30_000;
    this.maxAttempts = o.maxAttempts ?? 5;
    // A lingering batch is not acked yet: keep the wait far inside the ack wait, or JetStream
    // redelivers what is still waiting (harmless, the checkpoint skips it, but wasted).
    this.lingerMs = Math.min(o.lingerMs ?? 0, this.ackWaitMs / 4);
  }

  get name(): string {
    return this.o.projection.name;
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
    await this.lockClient?.end().catch(() => {});
    await this.leaderLoop;
  }

  /**
   * Rebuilds the projection from the stream: empties `tables` (the projection's own tables) and
   * resets its checkpoint, deletes the durable consumer, replays every event, and returns once the consumer
   * has nothing pending. Refuses while another process (the running service) is the leader.
   */
  async rebuild(tables: string[], timeoutMs = 30 * 60_000): Promise<number> {
    if (!(await this.acquireLeadership())) {
      throw new Error(`projector ${this.name} is running in another process: stop that service before rebuilding`);
    }
    const { jsm } = this.o.bus;
    await this.o.pool.query(`TRUNCATE ${tables.join(', ')}`);
    await this.o.pool.query(`DELETE FROM ${this.o.checkpointTable} WHERE projector = $1`, [this.name]);
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
   * stream before the call has been projected (or after `timeoutMs`, returning false). It reads the
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
   * time this instance starts consuming (a new leader) and after a delivery gap. The checkpoint in
   * Postgres is the truth about what is applied; JetStream's pending state is not: deliveries made
   * to a leader that died (or lost in a NATS reconnect) are redelivered only after ack_wait, after
   * newer events, and those newer events would move the checkpoint past them, so they would be
   * skipped as "already applied". Found by e2e/faults/projector.test.ts (a standby taking over from
   * a killed leader lost its in-flight batch).
   */
  private async resetConsumer(): Promise<void> {
    const { jsm } = this.o.bus;
    const { rows } = await this.o.pool.query<{ stream_seq: number }>(`SELECT stream_seq FROM ${this.o.checkpointTable} WHERE projector = $1`, [this.name]);
    const checkpoint = rows[0]?.stream_seq ?? 0;
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
          // Consumption ended without stop(): the leadership session was lost (e.g. Postgres
          // restarted). Give up the lock and compete again, so the projection catches up once
          // Postgres is back instead of staying stopped.
          await this.lockClient?.end().catch(() => {});
          this.lockClient = undefined;
          this.messages = undefined;
        }
      } catch (error) {
        this.o.log.warn({ err: (error as Error).message, projector: this.name }, 'projector not started yet; retrying');
        await this.lockClient?.end().catch(() => {});
        this.lockClient = undefined;
      }
      await sleep(2_000);
    }
  }

  private async acquireLeadership(): Promise<boolean> {
    const client = new pg.Client({ connectionString: this.o.databaseUrl, application_name: `projector:${this.name}` });
    client.on('error', () => {});
    await client.connect();
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [`parley.projector.${this.name}`]);
    if (!rows[0]?.ok) {
      await client.end();
      return false;
    }
    this.lockClient = client;
    // Losing the lock session means another replica may take over: stop consuming at once.
    client.on('end', () => {
      if (!this.stopped) {
        this.o.log.error({ projector: this.name }, 'projector lost its leadership session; stopping consumption');
        void this.messages?.close();
      }
    });
    return true;
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
      let gap = false;
      const messages = await consumer.consume({
        max_messages: this.batchSize * 2,
        callback: (msg) => {
          if (gap) return;
          const delivered = msg.info.deliverySequence;
          if (expected !== undefined && delivered !== expected) {
            gap = true;
            this.o.log.warn({ projector: this.name, expected, delivered, streamSeq: msg.seq }, 'projector saw a delivery gap; restarting from its checkpoint');
            void messages.close();
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
      await messages.closed();
      if (!gap) return;
      // What is queued comes again from the new consumer; the batch being applied finishes first.
      this.queue.splice(0);
      await this.draining;
    }
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
        const transient = isTransientPgError(error);
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
    // A consumer span in the trace of the (first) event's publisher; the Postgres statements of the
    // transaction become its children (packages/pg), so one trace reaches the insert.
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
    const seqs = this.o.hooks ? items.map((i) => i.msg.seq) : [];
    await this.o.hooks?.received?.(seqs);
    const client = await this.o.pool.connect();
    const applied: E[] = [];
    let lastSeq = 0;
    try {
      // Round trips are what a batch costs (each is a write and a wake-up on both sides), so the
      // fixed part is two: begin + lock the checkpoint row, and advance it + commit. The
      // checkpoint upsert takes the row lock (as FOR UPDATE would), so a former leader still
      // finishing a batch cannot commit over us. Only our own identifiers and integers are inlined.
      const [, locked] = (await client.query(
        `BEGIN; INSERT INTO ${this.o.checkpointTable} AS c (projector, stream_seq) VALUES (${this.nameLiteral}, 0)
           ON CONFLICT (projector) DO UPDATE SET stream_seq = c.stream_seq RETURNING stream_seq`,
      )) as unknown as [unknown, { rows: { stream_seq: string | number }[] }];
      const checkpoint = Number(locked.rows[0]?.stream_seq ?? 0);
      lastSeq = checkpoint;
      const fresh: { event: E; position: Position }[] = [];
      for (const { msg, event } of items) {
        if (msg.seq <= lastSeq) continue; // already applied: a redelivery after a crash
        fresh.push({ event, position: { streamSeq: msg.seq, subject: msg.subject } });
        applied.push(event);
        lastSeq = msg.seq;
      }
      if (this.o.projection.applyMany && fresh.length > 1) await this.o.projection.applyMany(fresh, client);
      else for (const { event, position } of fresh) await this.o.projection.apply(event, client, position);
      await this.o.hooks?.beforeCommit?.(seqs);
      const advance = lastSeq > checkpoint ? `UPDATE ${this.o.checkpointTable} SET stream_seq = ${Number(lastSeq)} WHERE projector = ${this.nameLiteral}; ` : '';
      await client.query(`${advance}COMMIT`);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      span.end();
      throw error;
    } finally {
      client.release();
    }
    await this.o.hooks?.afterCommit?.(seqs);
    for (const { msg } of items) msg.ack();
    span.end();
    this.applied += applied.length;
    this.o.metrics?.projectorEvents.inc({ projector: this.name, outcome: 'applied' }, applied.length);
    if (items.length > applied.length) {
      this.o.metrics?.projectorEvents.inc({ projector: this.name, outcome: 'skipped' }, items.length - applied.length);
    }
    if (applied.length > 0 && this.o.projection.afterCommit) {
      await this.o.projection.afterCommit(applied).catch((error: unknown) => {
        this.o.log.warn({ err: (error as Error).message, projector: this.name }, 'after-commit step failed');
      });
    }
  }

  private poison(msg: JsMsg, reason: string, event: E | undefined): void {
    // No reason argument: NATS 2.9 does not parse `+TERM <reason>` and would leave the message
    // pending (found by projector.int.test.ts). The reason goes to the log instead.
    msg.term();
    this.o.metrics?.projectorPoison.inc({ projector: this.name });
    this.o.log.error(
      { projector: this.name, stream: this.o.stream, streamSeq: msg.seq, subject: msg.subject, eventId: event?.meta?.eventId, reason },
      'poison event terminated: it will not be projected',
    );
  }
}


function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Read-your-writes for request handlers: waits until a projector has applied `streamSeq`.
 * Polls the checkpoint, because the leader may be another replica.
 */
export async function waitForCheckpoint(
  pool: pg.Pool,
  checkpointTable: string,
  projector: string,
  streamSeq: number,
  timeoutMs = 5_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    const { rows } = await pool.query<{ stream_seq: number }>(`SELECT stream_seq FROM ${checkpointTable} WHERE projector = $1`, [projector]);
    if ((rows[0]?.stream_seq ?? 0) >= streamSeq) return true;
    if (Date.now() >= deadline) return false;
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}
