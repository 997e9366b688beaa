import { writeFile, rename } from 'node:fs/promises';
import { Counter, Gauge, Pushgateway, Registry } from 'prom-client';

/**
 * The retention job's metrics. A CronJob pod lives for one pass, too briefly to be scraped, so
 * they are handed over the two usual ways: a node_exporter textfile (written atomically) or a
 * Prometheus Pushgateway. The alert "no successful pass in 26 hours" reads
 * `retention_last_success_timestamp_seconds`.
 */
export function createJobMetrics() {
  const registry = new Registry();
  return {
    registry,
    deleted: new Counter({ name: 'retention_deleted_total', help: 'Rows, stream events and files a retention pass deleted, by data type', labelNames: ['type'] as const, registers: [registry] }),
    duration: new Gauge({ name: 'retention_duration_seconds', help: 'How long the last retention pass took', registers: [registry] }),
    lastSuccess: new Gauge({ name: 'retention_last_success_timestamp_seconds', help: 'When the last successful retention pass ended (Unix time)', registers: [registry] }),
    lastRun: new Gauge({ name: 'retention_last_run_timestamp_seconds', help: 'When the last retention pass ended, successful or not (Unix time)', registers: [registry] }),
  };
}
export type JobMetrics = ReturnType<typeof createJobMetrics>;

export async function exportJobMetrics(metrics: JobMetrics, target: { textfile?: string | undefined; pushgateway?: string | undefined }): Promise<void> {
  if (target.textfile) {
    const partial = `${target.textfile}.${process.pid}.tmp`;
    await writeFile(partial, await metrics.registry.metrics());
    await rename(partial, target.textfile);
  }
  if (target.pushgateway) {
    await new Pushgateway(target.pushgateway, {}, metrics.registry).pushAdd({ jobName: 'parley_retention' });
  }
}
