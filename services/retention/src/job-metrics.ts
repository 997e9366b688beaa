import { readFile, rename, writeFile } from 'node:fs/promises';
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

const LAST_SUCCESS = 'retention_last_success_timestamp_seconds';

/**
 * Exports the pass's metrics. `succeeded: false` must not erase the last success (issue 20: a
 * failed pass pushed 0, and `RetentionNotRun` said "56 years"): the textfile keeps the value it
 * held, and the Pushgateway gets no last-success sample at all, so its group keeps the old one
 * (pushAdd replaces only the metrics it sends).
 */
export async function exportJobMetrics(
  metrics: JobMetrics,
  target: { textfile?: string | undefined; pushgateway?: string | undefined },
  succeeded = true,
): Promise<void> {
  if (!succeeded) {
    const before = target.textfile ? await readFile(target.textfile, 'utf8').catch(() => '') : '';
    const kept = new RegExp(`^${LAST_SUCCESS} (\\S+)$`, 'm').exec(before)?.[1];
    if (kept !== undefined && Number.isFinite(Number(kept))) metrics.lastSuccess.set(Number(kept));
    else metrics.registry.removeSingleMetric(LAST_SUCCESS);
    if (target.textfile) {
      const partial = `${target.textfile}.${process.pid}.tmp`;
      await writeFile(partial, await metrics.registry.metrics());
      await rename(partial, target.textfile);
    }
    if (target.pushgateway) {
      metrics.registry.removeSingleMetric(LAST_SUCCESS);
      await new Pushgateway(target.pushgateway, {}, metrics.registry).pushAdd({ jobName: 'parley_retention' });
    }
    return;
  }
  if (target.textfile) {
    const partial = `${target.textfile}.${process.pid}.tmp`;
    await writeFile(partial, await metrics.registry.metrics());
    await rename(partial, target.textfile);
  }
  if (target.pushgateway) {
    await new Pushgateway(target.pushgateway, {}, metrics.registry).pushAdd({ jobName: 'parley_retention' });
  }
}
