import type { Logger } from '@parley/log';
import { withTransaction, type Pool, type PoolClient } from '@parley/pg';

/** One queue table: its key column and what to do with a batch of keys (idempotent). */
export interface QueueSpec {
  /** Names the reactor in logs. */
  name: string;
  /** Schema-qualified table with a primary key `key` and a `queued_at` column. */
  table: string;
  key: string;
  /** Extra columns handed to `act` with the key. */
  columns?: string[];
  /** Most rows one drain takes. */
  batch?: number;
  /**
   * Does the side effect for these rows; runs while the rows are locked, before they are deleted.
   * May return the keys of rows to keep for a later drain (their effect cannot be done yet).
   */
  act(rows: Record<string, unknown>[], tx: PoolClient): Promise<void | unknown[]>;
}

/**
 * A reactor draining a queue table that a projection fills in the same transaction as the rows it
 * writes (a transactional outbox): the side effect (removing content from a stream, publishing an
 * event, deleting a file) cannot be lost to a crash after the commit, because the row stays until
 * the effect is done. Retried until done: a failed drain leaves the rows, and the next one (on a
 * kick after a commit, at start, or every `intervalMs`) takes them again, so `act` must be
 * idempotent. Replicas share the queue: rows are taken with SKIP LOCKED.
 */
export class QueueReactor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly deps: { pool: Pool; log: Logger },
    private readonly spec: QueueSpec,
    private readonly intervalMs = 5_000,
  ) {}

  start(): void {
    this.kick();
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
  }

  /** Drains now (or right after the drain under way). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain()
      .then(() => undefined)
      .catch((error: unknown) => this.deps.log.warn({ reactor: this.spec.name, err: (error as Error).message }, 'reactor failed; retried'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** Takes and acts on queued rows until the queue is empty; returns how many it handled. */
  async drain(): Promise<number> {
    const { table, key } = this.spec;
    const batch = this.spec.batch ?? 500;
    const columns = [key, ...(this.spec.columns ?? [])].join(', ');
    let total = 0;
    for (;;) {
      // The rows stay locked while `act` runs and go in the same transaction: a failure keeps them.
      const done = await withTransaction(this.deps.pool, async (tx) => {
        const { rows } = await tx.query<Record<string, unknown>>(`SELECT ${columns} FROM ${table} ORDER BY queued_at, ${key} LIMIT $1 FOR UPDATE SKIP LOCKED`, [batch]);
        if (rows.length === 0) return { taken: 0, handled: 0 };
        const kept = new Set((await this.spec.act(rows, tx)) ?? []);
        const handled = rows.map((r) => r[key]).filter((k) => !kept.has(k));
        await tx.query(`DELETE FROM ${table} WHERE ${key} = ANY($1)`, [handled]);
        return { taken: rows.length, handled: handled.length };
      });
      total += done.handled;
      // A full batch of which some rows were kept would be taken again at once: stop there.
      if (done.taken < batch || done.handled < done.taken) return total;
    }
  }
}
