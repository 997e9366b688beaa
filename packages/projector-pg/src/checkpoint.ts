import type { Queryable } from '@parley/pg';

/**
 * A projector's checkpoint: the last stream sequence it applied, one row per projector in the
 * service's `(projector text primary key, stream_seq bigint)` table; 0 before the first.
 */
export async function readCheckpoint(db: Queryable, checkpointTable: string, projector: string): Promise<number> {
  const { rows } = await db.query<{ stream_seq: string | number }>(`SELECT stream_seq FROM ${checkpointTable} WHERE projector = $1`, [projector]);
  return Number(rows[0]?.stream_seq ?? 0);
}

/**
 * Read-your-writes for request handlers: waits until a projector has applied `streamSeq`.
 * Polls the checkpoint, because the leader may be another replica.
 */
export async function waitForCheckpoint(db: Queryable, checkpointTable: string, projector: string, streamSeq: number, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    if ((await readCheckpoint(db, checkpointTable, projector)) >= streamSeq) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 50);
  }
}
