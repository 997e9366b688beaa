import pg from 'pg';

export interface HeldLock {
  /** The holding connection, inside its transaction (for reads that must see what it sees). */
  client: pg.Client;
  /** Commits: whatever waited for the lock goes on. */
  release(): Promise<void>;
  /** Closes the connection (in `finally`); a transaction still open is rolled back by the server. */
  end(): Promise<void>;
}

/**
 * A lock taken in an open transaction on a connection of its own, as a slow projector or a slow
 * database holds one: the tests use it to hold a projection back at a chosen point.
 */
export async function holdLock(databaseUrl: string, lock: string, params: unknown[] = []): Promise<HeldLock> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(lock, params);
  } catch (error) {
    await client.end();
    throw error;
  }
  return {
    client,
    release: async () => {
      await client.query('COMMIT');
    },
    end: () => client.end(),
  };
}
