import { Processor, type Bus, type ParseResult, type ProjectorHooks } from '@parley/bus';
import type { Logger } from '@parley/log';
import type { Pool } from '@parley/pg';
import type { Metrics } from '@parley/telemetry';
import { AdvisoryLockLeadership } from './leadership.js';
import { ProjectionStore, type Projection } from './store.js';

export interface ProjectorOptions<E> {
  bus: Bus;
  stream: string;
  filterSubject: string;
  pool: Pool;
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
   * 0 applies at once). A batch costs one transaction whatever its size.
   */
  lingerMs?: number;
  /**
   * Whether a batch's commit waits for its WAL to reach disk (default true). Off, a Postgres crash
   * may forget the last commits, checkpoint included, and the projector applies those events again
   * from the stream (it restarts from the checkpoint): the stream, not Postgres, is the truth.
   */
  synchronousCommit?: boolean;
  /** Attempts for an event whose apply fails with a non-transient error before it is terminated. */
  maxAttempts?: number;
  /** Fault injection for tests (@parley/bus faults.ts): called at each step of a batch. */
  hooks?: ProjectorHooks;
}

/**
 * Projects one stream (filtered) into Postgres: @parley/bus's Processor (consumer, ordering,
 * batching, retries, poison, gap-free restarts; its header lists those guarantees) with the
 * Postgres pieces: leadership by an advisory lock (leadership.ts) and one transaction per batch
 * that also advances the checkpoint (store.ts), which is what makes it idempotent.
 */
export class Projector<E extends { meta?: { eventId?: string } }> {
  private readonly processor: Processor<E>;
  private readonly store: ProjectionStore<E>;

  constructor(options: ProjectorOptions<E>) {
    const { pool, checkpointTable, databaseUrl, projection, synchronousCommit = true, ...processing } = options;
    this.store = new ProjectionStore(pool, checkpointTable, projection, synchronousCommit);
    this.processor = new Processor<E>({
      ...processing,
      name: projection.name,
      leadership: new AdvisoryLockLeadership(databaseUrl, projection.name),
      store: this.store,
      afterCommit: projection.afterCommit?.bind(projection),
    });
  }

  get name(): string {
    return this.processor.name;
  }

  /** Events applied by this instance (skipped redeliveries excluded). */
  get applied(): number {
    return this.processor.applied;
  }

  /** Starts competing for leadership and, once leader, consuming. Returns at once. */
  start(): void {
    this.processor.start();
  }

  stop(): Promise<void> {
    return this.processor.stop();
  }

  /** Resolves once everything stored in the stream before the call is projected (Processor.caughtUp). */
  caughtUp(timeoutMs?: number): Promise<boolean> {
    return this.processor.caughtUp(timeoutMs);
  }

  /**
   * Rebuilds the projection from the stream: empties `tables` (the projection's own tables) and
   * resets its checkpoint, deletes the durable consumer, replays every event, and returns once the
   * consumer has nothing pending; `prepare` runs between the emptying and the replay. Refuses while another process (the running service) holds the lock.
   */
  rebuild(tables: string[], timeoutMs?: number, prepare?: () => Promise<void>): Promise<number> {
    return this.processor.rebuild(async () => {
      await this.store.clear(tables);
      // What the replay builds on and the stream no longer holds (the chats' snapshots).
      await prepare?.();
    }, timeoutMs);
  }
}
