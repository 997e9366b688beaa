import pg from 'pg';
import type { Leadership, Lease } from '@parley/bus';

/**
 * One leader per projector: `pg_try_advisory_lock` on a dedicated session (not a pooled client: the
 * lock lives exactly as long as the session, and a pool would hand it to others), so replicas
 * stand by and retry. If Postgres ends the session (a restart), leadership is lost and reported;
 * another replica may then take the lock.
 */
export class AdvisoryLockLeadership implements Leadership {
  constructor(
    private readonly databaseUrl: string,
    private readonly projector: string,
  ) {}

  async acquire(onLost: () => void): Promise<Lease | undefined> {
    // The application name lets operators (and tests) find the lock session in pg_stat_activity.
    const client = new pg.Client({ connectionString: this.databaseUrl, application_name: `projector:${this.projector}` });
    client.on('error', () => {});
    let locked = false;
    try {
      await client.connect();
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [`parley.projector.${this.projector}`]);
      locked = rows[0]?.ok === true;
    } finally {
      if (!locked) await client.end().catch(() => {});
    }
    if (!locked) return undefined;
    let released = false;
    client.on('end', () => {
      if (!released) onLost();
    });
    return {
      async release() {
        released = true;
        await client.end().catch(() => {});
      },
    };
  }
}
