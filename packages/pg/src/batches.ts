import type pg from 'pg';

/** Rows one statement of a bulk delete removes: small enough that no lock or WAL burst stalls other writers. */
export const DELETE_BATCH_ROWS = 5000;

/**
 * Runs a bounded DELETE until it removes nothing, so that retention and erasure never hold one
 * statement's locks over millions of rows. `sql` takes the caller's parameters, then the batch size
 * as the last one (`LIMIT $n`); `onRows` gets each batch's `RETURNING` rows. A lock wait longer than `lockTimeoutMs` fails the statement (and the
 * caller's transaction) instead of queueing writers behind it; the projector retries it in place.
 * Returns the number of rows deleted.
 */
export async function deleteInBatches(
  client: Pick<pg.PoolClient, 'query'>,
  sql: string,
  params: unknown[],
  options: { batchRows?: number; lockTimeoutMs?: number; onRows?: (rows: Record<string, unknown>[]) => void } = {},
): Promise<number> {
  const batch = options.batchRows ?? DELETE_BATCH_ROWS;
  await client.query(`SET LOCAL lock_timeout = ${Math.trunc(options.lockTimeoutMs ?? 5000)}`);
  let total = 0;
  for (;;) {
    const { rowCount, rows } = await client.query(sql, [...params, batch]);
    // What a `RETURNING` clause names of each batch's rows, for a caller that must know whose they were.
    options.onRows?.(rows);
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < batch) return total;
  }
}
