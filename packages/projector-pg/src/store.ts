import type { CheckpointStore, Position, PositionedEvent } from '@parley/bus';
import { isTransientPgError, type Pool, type PoolClient } from '@parley/pg';
import { readCheckpoint } from './checkpoint.js';

export interface Projection<E> {
  /** Unique per service; names the durable consumer and the checkpoint row. */
  name: string;
  apply(event: E, tx: PoolClient, position: Position): Promise<void>;
  /**
   * Optional bulk path: applies several events (in stream order) in one go, e.g. with multi-row
   * inserts. Must have the same effect as calling `apply` for each in turn.
   */
  applyMany?(items: PositionedEvent<E>[], tx: PoolClient): Promise<void>;
  /** Runs after commit (cache invalidation, counters); its failures are logged, never retried. */
  afterCommit?(events: E[]): Promise<void>;
}

/**
 * A projection's batches in Postgres: one transaction per batch writes the projection's rows and
 * advances the projector's checkpoint row, so a batch lands whole or not at all, and an event at or
 * below the checkpoint (a redelivery after a crash between commit and ack) is skipped: never a
 * second row.
 */
export class ProjectionStore<E> implements CheckpointStore<E> {
  /** The projector's name as a SQL string literal (it is ours, but quoted properly all the same). */
  private readonly nameLiteral: string;

  constructor(
    private readonly pool: Pool,
    /** Schema-qualified table `(projector text primary key, stream_seq bigint)` in the service's schema. */
    private readonly checkpointTable: string,
    private readonly projection: Projection<E>,
    /** false: `SET LOCAL synchronous_commit = off` in each batch (projector.ts says why that is safe). */
    private readonly synchronousCommit = true,
  ) {
    this.nameLiteral = `'${projection.name.replace(/'/g, "''")}'`;
  }

  loadCheckpoint(): Promise<number> {
    return readCheckpoint(this.pool, this.checkpointTable, this.projection.name);
  }

  /** SQLSTATE classes and connection errors that mean Postgres is unavailable (@parley/pg). */
  isTransient(error: unknown): boolean {
    return isTransientPgError(error);
  }

  async applyBatch(items: PositionedEvent<E>[], beforeCommit: () => void | Promise<void>): Promise<PositionedEvent<E>[]> {
    const client = await this.pool.connect();
    try {
      // Round trips are what a batch costs (each is a write and a wake-up on both sides), so the
      // fixed part is two: begin + lock the checkpoint row, and advance it + commit. The
      // checkpoint upsert takes the row lock (as FOR UPDATE would), so a former leader still
      // finishing a batch cannot commit over us. Only our own identifiers and integers are inlined.
      const replies = (await client.query(
        `BEGIN;${this.synchronousCommit ? '' : ' SET LOCAL synchronous_commit = off;'} INSERT INTO ${this.checkpointTable} AS c (projector, stream_seq) VALUES (${this.nameLiteral}, 0)
           ON CONFLICT (projector) DO UPDATE SET stream_seq = c.stream_seq RETURNING stream_seq`,
      )) as unknown as { rows: { stream_seq: string | number }[] }[];
      // A multi-statement query answers one result per statement; the upsert's is the last.
      const locked = replies[replies.length - 1]!;
      const checkpoint = Number(locked.rows[0]?.stream_seq ?? 0);
      let lastSeq = checkpoint;
      const fresh: PositionedEvent<E>[] = [];
      for (const item of items) {
        // Already applied: a redelivery after a crash, or one that arrived while its first delivery waited.
        if (item.position.streamSeq <= lastSeq) continue;
        fresh.push(item);
        lastSeq = item.position.streamSeq;
      }
      if (this.projection.applyMany && fresh.length > 1) await this.projection.applyMany(fresh, client);
      else for (const { event, position } of fresh) await this.projection.apply(event, client, position);
      await beforeCommit();
      const advance = lastSeq > checkpoint ? `UPDATE ${this.checkpointTable} SET stream_seq = ${Number(lastSeq)} WHERE projector = ${this.nameLiteral}; ` : '';
      await client.query(`${advance}COMMIT`);
      return fresh;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /** For a rebuild: empties the projection's own `tables` and forgets its checkpoint. */
  async clear(tables: string[]): Promise<void> {
    await this.pool.query(`TRUNCATE ${tables.join(', ')}`);
    await this.pool.query(`DELETE FROM ${this.checkpointTable} WHERE projector = $1`, [this.projection.name]);
  }
}
