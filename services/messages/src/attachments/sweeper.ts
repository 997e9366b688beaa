import pg from 'pg';
import type { Bus } from '@parley/bus';
import { publishAttachmentDeleted } from './deleted.js';
import type { Logger } from '@parley/log';
import type { Pool } from '@parley/pg';

/**
 * Sweeps uploads that no message used within the grace period: the client uploaded and never sent
 * (or the send failed). Each becomes an AttachmentDeleted event; the projection removes the row and
 * the file, so a rebuild agrees. One replica sweeps at a time (a Postgres advisory lock held for the
 * pass); bounded batches keep a pass from competing with live traffic.
 */
export class AttachmentSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly deps: { bus: Bus; pool: Pool; namespace: string; log: Logger; databaseUrl: string },
    private readonly graceSeconds: number,
    private readonly intervalSeconds: number,
    private readonly batchSize = 500,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweepOnce().catch((error: unknown) => this.deps.log.warn({ err: (error as Error).message }, 'attachment sweep failed')), this.intervalSeconds * 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => {});
  }

  /** One pass; returns how many attachments it marked for deletion. */
  sweepOnce(now = new Date()): Promise<number> {
    this.running ??= this.pass(now).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(now: Date): Promise<number> {
    const lock = new pg.Client({ connectionString: this.deps.databaseUrl });
    lock.on('error', () => {});
    await lock.connect();
    try {
      const { rows } = await lock.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', ['parley.attachment-sweeper']);
      if (!rows[0]?.ok) return 0;
      const cutoff = new Date(now.getTime() - this.graceSeconds * 1000);
      const { rows: stale } = await this.deps.pool.query<{ id: string }>(
        `SELECT a.id FROM messages.attachments a
          WHERE a.uploaded_at < $1 AND NOT EXISTS (SELECT 1 FROM messages.message_attachments ma WHERE ma.attachment_id = a.id)
          ORDER BY a.uploaded_at LIMIT $2`,
        [cutoff, this.batchSize],
      );
      for (const { id } of stale) await publishAttachmentDeleted(this.deps, id, 'unreferenced', { actorId: null, occurredAt: now });
      if (stale.length > 0) this.deps.log.info({ swept: stale.length }, 'unreferenced attachments swept');
      return stale.length;
    } finally {
      await lock.end().catch(() => {});
    }
  }
}
