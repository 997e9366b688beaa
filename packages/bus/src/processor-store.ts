/**
 * What a Processor (processor.ts) needs from the place it applies events to. The processor owns
 * everything about JetStream; these two interfaces own everything about the store. The Postgres
 * implementation is @parley/projector-pg.
 */

/** Where an event sits in its stream; stored with whatever it produced. */
export interface Position {
  streamSeq: number;
  subject: string;
}

export interface PositionedEvent<E> {
  event: E;
  position: Position;
}

export type ParseResult<E> = { ok: true; event: E } | { ok: false; reason: string };

/**
 * One leader per processor name, so replicas stand by and events are applied by one instance in
 * stream order. Leadership lasts until `release()` or until the store loses it by itself (its
 * session ended, e.g. the database restarted): then `onLost` is called, and the processor stops
 * consuming at once, because another replica may already be leading.
 */
export interface Leadership {
  /** Resolves with a lease when this instance is now the leader, or undefined when another one is. */
  acquire(onLost: () => void): Promise<Lease | undefined>;
}

export interface Lease {
  /** Gives leadership up; `onLost` is not called for it. */
  release(): Promise<void>;
}

/**
 * The store's half of the processor's guarantees. `applyBatch` must be atomic: the effects of the
 * events and the new checkpoint (the last applied stream sequence) are committed together or not
 * at all. That is what makes processing idempotent: an event at or below the checkpoint (a
 * redelivery after a crash between commit and ack) is skipped, never applied twice. And it must
 * serialise on the checkpoint, so that a former leader still finishing a batch cannot commit over
 * the new leader's.
 */
export interface CheckpointStore<E> {
  /** The last stream sequence applied; 0 before the first. A new consumer starts just after it. */
  loadCheckpoint(): Promise<number>;
  /**
   * Applies, in order, each event whose stream sequence is above the checkpoint and above the events
   * applied before it in this batch (a batch can hold a redelivery next to its first delivery),
   * advances the checkpoint to the last one applied, calls `beforeCommit` (a fault-injection point)
   * and commits. Resolves once committed with the events it applied; throws having committed nothing.
   */
  applyBatch(items: PositionedEvent<E>[], beforeCommit: () => void | Promise<void>): Promise<PositionedEvent<E>[]>;
  /** Whether a failure means "the store is unavailable, try again" (retried without limit) rather than "this event fails". */
  isTransient(error: unknown): boolean;
}
