import { parseArgs } from 'node:util';
import { createLogger } from '@parley/log';
import { openDeps } from '@parley/runtime';
import { loadRetentionEnv } from './env.js';
import { createJobMetrics, exportJobMetrics } from './job-metrics.js';
import { acquireJobLock } from '@parley/bus';
import { runRetentionPass, type PassReport } from './pass.js';

export interface CliResult {
  exitCode: number;
  report?: PassReport;
}

/**
 * `npm run cleanup [-- --dry-run] [--now <ISO time>] [--ledger-from <namespace>]`: one retention pass, then exit. The
 * summary goes to stdout (a table for people) and to the log (one JSON line for machines).
 */
export async function runCleanup(argv: string[], source: Record<string, string | undefined>, print: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<CliResult> {
  const { values } = parseArgs({ args: argv, options: { 'dry-run': { type: 'boolean', default: false }, now: { type: 'string' }, 'ledger-from': { type: 'string' }, json: { type: 'boolean', default: false } }, strict: true });
  const now = values.now === undefined ? new Date() : new Date(values.now);
  if (Number.isNaN(now.getTime())) throw new Error(`--now: not an ISO 8601 time: ${values.now}`);
  const config = loadRetentionEnv(source);
  const metrics = createJobMetrics();
  const started = Date.now();
  let exitCode = 1;
  let report: PassReport | undefined;
  let opened: Awaited<ReturnType<typeof openDeps>> | undefined;
  // Until the dependencies are open (their logger with them), failures are logged here.
  let log = createLogger({ service: 'retention', level: config.LOG_LEVEL });
  try {
    // Inside the try: NATS unreachable is a failed pass (exit 1, the run exported),
    // not bad settings (exit 2, nothing exported), so that RetentionLastRunFailed fires.
    opened = await openDeps({ name: 'retention', env: config });
    log = opened.deps.log;
    const { bus, namespace } = opened.deps;
    // Waits for a running backup (its export must not lose events to this pass's purge).
    const release = await acquireJobLock(bus.nc, namespace, 'retention', { replicas: config.STREAM_REPLICAS });
    try {
      report = await runRetentionPass(opened.deps, {
        now,
        dryRun: values['dry-run'],
        days: {
          messages: config.MESSAGE_RETENTION_DAYS,
          auditLog: config.AUDIT_LOG_RETENTION_DAYS,
          resetTokens: config.RESET_TOKEN_RETENTION_DAYS,
          readReceipts: config.READ_RECEIPT_RETENTION_DAYS,
        },
        batchMessages: config.RETENTION_BATCH_MESSAGES,
        deleteConcurrency: config.RETENTION_DELETE_CONCURRENCY,
        purgeChunk: config.RETENTION_PURGE_CHUNK,
        scanBuffer: config.RETENTION_SCAN_BUFFER,
        projectionTimeoutMs: config.RETENTION_PROJECTION_TIMEOUT_SECONDS * 1000,
        orphanFileGraceMs: config.RETENTION_ORPHAN_FILE_GRACE_SECONDS * 1000,
        ledgerFrom: values['ledger-from'],
        eraseStreamMessages: config.RETENTION_STREAM_ERASE,
        purgeEdge: config.RETENTION_PURGE_EDGE,
      });
    } finally {
      await release();
    }
    if (values.json) print(JSON.stringify(report));
    else printReport(report, print);
    log.info({ ...report }, report.dryRun ? 'retention dry run' : 'retention pass done');
    if (!report.dryRun) {
      for (const [type, n] of Object.entries(report.rows)) metrics.deleted.inc({ type }, n);
      for (const [stream, n] of Object.entries(report.streamEvents)) metrics.deleted.inc({ type: `stream_${stream}` }, n);
      metrics.deleted.inc({ type: 'orphan_files' }, report.orphanFiles);
      metrics.lastSuccess.set(Date.now() / 1000);
    }
    exitCode = 0;
  } catch (error) {
    log.error({ err: error }, 'retention pass failed');
    print(`retention pass failed: ${(error as Error).message}`);
  } finally {
    metrics.duration.set((Date.now() - started) / 1000);
    metrics.lastRun.set(Date.now() / 1000);
    if (!values['dry-run']) {
      await exportJobMetrics(metrics, { textfile: config.RETENTION_METRICS_TEXTFILE, pushgateway: config.PUSHGATEWAY_URL }, exitCode === 0).catch((error: unknown) => {
        log.warn({ err: error }, 'could not export the job metrics');
      });
    }
    await opened?.close();
    await opened?.stopTracing();
  }
  return report ? { exitCode, report } : { exitCode };
}

function printReport(report: PassReport, print: (line: string) => void): void {
  print(`${report.dryRun ? 'Dry run: would delete' : 'Deleted'} (policy as of ${report.now}, ${report.durationMs} ms):`);
  const rows = Object.entries(report.rows).map(([type, n]) => `  ${type.padEnd(16)} ${String(n).padStart(10)} rows`);
  const events = Object.entries(report.streamEvents).map(([stream, n]) => `  ${`stream ${stream}`.padEnd(16)} ${String(n).padStart(10)} events`);
  for (const line of [...rows, ...events]) print(line);
  if (!report.dryRun) print(`  ${'orphan files'.padEnd(16)} ${String(report.orphanFiles).padStart(10)} files`);
  print(`Erasure ledger: ${report.ledger.entries} entries${report.ledger.imported ? ` (${report.ledger.imported} imported)` : ''}; erased again: ${report.ledger.accountsReerased} accounts, ${report.ledger.messagesRedeleted} messages`);
  print(`Cutoffs: ${Object.entries(report.cutoffs).map(([k, v]) => `${k} < ${v}`).join(', ')}`);
}
