import { deleteStreamSequences, type Bus } from '@parley/bus';
import { streamName } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Pool } from '@parley/pg';

/** How many queued deletions one drain takes; JetStream deletes one message per request. */
const BATCH = 500;

/**
 * The reactor that removes deleted content from the chats stream (issue 17): the chats projection
 * queues the stream sequences of a deleted message's original and edits in
 * `messages.stream_deletions`, in the transaction that writes the tombstone; this drains the
 * queue. Idempotent (a sequence already gone counts as done) and retried until done: a crash at any
 * point leaves the rows, and the next drain (at start, on a kick after a commit, or every
 * `intervalMs`) deletes them. Replicas share the queue: rows are taken with SKIP LOCKED.
 */
export class StreamContentDeleter {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly deps: { pool: Pool; bus: Bus; namespace: string; log: Logger },
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
      .catch((error: unknown) => this.deps.log.warn({ err: (error as Error).message }, 'stream content deletion failed; retried'))
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

  /** Deletes queued sequences until the queue is empty. */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const client = await this.deps.pool.connect();
      let done = 0;
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ stream_seq: string }>(
          'SELECT stream_seq FROM messages.stream_deletions ORDER BY stream_seq LIMIT $1 FOR UPDATE SKIP LOCKED',
          [BATCH],
        );
        const seqs = rows.map((r) => Number(r.stream_seq));
        if (seqs.length > 0) {
          await deleteStreamSequences(this.deps.bus.jsm, streamName(this.deps.namespace, 'chats'), seqs, 8);
          await client.query('DELETE FROM messages.stream_deletions WHERE stream_seq = ANY($1::bigint[])', [seqs]);
        }
        await client.query('COMMIT');
        done = seqs.length;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
      total += done;
      if (done < BATCH) return total;
    }
  }
}
