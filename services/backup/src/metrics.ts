import { rename, writeFile } from 'node:fs/promises';
import { Gauge, Pushgateway, Registry } from 'prom-client';

/**
 * The backup job's metrics. A CronJob pod lives for one run, too briefly to be scraped, so they
 * are handed over the two usual ways: a node_exporter textfile (written atomically) and/or a
 * Prometheus Pushgateway (job "parley_backup"). Only a successful backup exports them, so the
 * alert "no successful backup in 26 hours" reads `backup_last_success_timestamp_seconds`.
 */
export function backupMetrics(values: { finishedAt: Date; bytes: number; durationSeconds: number }): Registry {
  const registry = new Registry();
  new Gauge({ name: 'backup_last_success_timestamp_seconds', help: 'When the last successful backup finished (Unix time)', registers: [registry] }).set(values.finishedAt.getTime() / 1000);
  new Gauge({ name: 'backup_size_bytes', help: 'Size of the last successful backup archive', registers: [registry] }).set(values.bytes);
  new Gauge({ name: 'backup_duration_seconds', help: 'How long the last successful backup took', registers: [registry] }).set(values.durationSeconds);
  return registry;
}

/** After a run that failed (`backup` or `daily`: an error, or verify finding a difference). */
export function failureMetrics(at: Date): Registry {
  const registry = new Registry();
  new Gauge({ name: 'backup_last_failure_timestamp_seconds', help: 'When a backup run last failed (Unix time)', registers: [registry] }).set(at.getTime() / 1000);
  return registry;
}

/** After an archive reached off-site storage (`daily` with BACKUP_S3_URL, or `push`). */
export function offsiteMetrics(values: { finishedAt: Date; bytes: number }): Registry {
  const registry = new Registry();
  new Gauge({ name: 'backup_offsite_last_success_timestamp_seconds', help: 'When an archive last reached off-site storage (Unix time)', registers: [registry] }).set(values.finishedAt.getTime() / 1000);
  new Gauge({ name: 'backup_offsite_size_bytes', help: 'Size of the archive last copied off-site', registers: [registry] }).set(values.bytes);
  return registry;
}

export async function exportMetrics(registry: Registry, target: { textfile?: string | undefined; pushgateway?: string | undefined }): Promise<void> {
  if (target.textfile) {
    const partial = `${target.textfile}.${process.pid}.tmp`;
    await writeFile(partial, await registry.metrics());
    await rename(partial, target.textfile);
  }
  if (target.pushgateway) {
    await new Pushgateway(target.pushgateway, {}, registry).pushAdd({ jobName: 'parley_backup' });
  }
}
