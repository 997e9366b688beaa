import { access } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { applyEnvFile, withoutEnvFileArgs } from '@parley/config';
import { createLogger } from '@parley/log';
import { CorruptArchiveError } from './archive.js';
import { runBackup } from './backup.js';
import { loadBackupEnv } from './env.js';
import { backupMetrics, exportMetrics, failureMetrics, offsiteMetrics } from './metrics.js';
import { OffsiteStore } from './offsite.js';
import { POOL_DIR } from './attachments.js';
import { RestoreCheckError, RetentionMissingError, runRestore, ServicesRunningError, TargetNotEmptyError } from './restore.js';
import { rotateDirectory } from './rotate.js';
import { runVerify } from './verify.js';

const USAGE = `usage: node services/backup/dist/main.js <command>
  backup <dir>                 write parley-<namespace>-<UTC time>.tar.gz into <dir>
  restore <archive> [--force]  restore into DATABASE_URL / PARLEY_NAMESPACE / ATTACHMENTS_DIR
  verify <archive>             check, restore into a scratch database and namespace, compare
  rotate <dir>                 keep BACKUP_KEEP_DAILY / _WEEKLY / _MONTHLY archives and the newest verified one
  daily <dir>                  backup, then verify that archive, then rotate: what the scheduled job runs
                               (and, with BACKUP_S3_URL, copy it off-site and rotate there)
  push <archive>               copy an archive to BACKUP_S3_URL, then rotate there
  pull <name|latest> <dir>     fetch an archive (latest: the newest verified) from BACKUP_S3_URL, checked`;

const say = (line: string) => process.stdout.write(`${line}\n`);

/** Exit codes: 0 done, 1 failed (or verify found a difference), 2 usage or configuration error. */
async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { force: { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
  } catch (error) {
    // An unknown flag (`restore x --forse`) is a usage error like a missing argument: exit 2 with
    // one line, not the TypeError's stack and exit 1.
    const e = error as { code?: string; message: string };
    if (!e.code?.startsWith('ERR_PARSE_ARGS_')) throw error;
    process.stderr.write(`backup: ${e.message.split('. ')[0]!.replace(/\.$/, '')} (run without arguments for the usage)\n`);
    return 2;
  }
  const { positionals, values } = parsed;
  const [command, target, extra] = positionals;
  const arity = command === 'pull' ? 3 : 2;
  if (!command || !target || positionals.length !== arity || (values.force && command !== 'restore')) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const config = loadBackupEnv(process.env);
  // Logs (JSON) to stderr; stdout carries the report.
  const log = createLogger({ service: 'backup', level: config.LOG_LEVEL, destination: process.stderr });
  const backup = async () => {
    const result = await runBackup(config, target, log);
    const messages = result.manifest.streams.reduce((n, s) => n + s.messages, 0);
    say(`backup ${result.archive}: ${result.bytes} bytes, ${messages} stream messages, ${result.manifest.attachments.files.length} files (${result.pooled.added} new in ${POOL_DIR}/, ${result.pooled.addedBytes} bytes), ${(result.durationMs / 1000).toFixed(1)} s`);
    const registry = backupMetrics({ finishedAt: new Date(), bytes: result.bytes, durationSeconds: result.durationMs / 1000 });
    // The archive is made: a Pushgateway that is down (or a textfile that cannot be written) is
    // logged, not thrown. Thrown, it stopped daily before verify, rotate and the off-site copy, and
    // the volume filled; missing, the last success stays old and BackupNotRun fires as it should.
    await exportMetrics(registry, { textfile: config.BACKUP_METRICS_TEXTFILE, pushgateway: config.PUSHGATEWAY_URL }).catch((error: unknown) => {
      log.warn({ err: (error as Error).message }, 'could not export the backup metrics');
    });
    return result.archive;
  };
  const verify = async (archive: string) => {
    const report = await runVerify(config, archive, log);
    for (const line of report.lines) say(`  ${line}`);
    for (const problem of report.problems) say(`  PROBLEM: ${problem}`);
    say(`verify ${archive}: ${report.ok ? 'OK' : 'FAILED'} (${(report.durationMs / 1000).toFixed(1)} s)`);
    return report.ok;
  };
  const policy = () => ({ daily: config.BACKUP_KEEP_DAILY, weekly: config.BACKUP_KEEP_WEEKLY, monthly: config.BACKUP_KEEP_MONTHLY });
  const rotate = async (dir: string) => {
    const { kept, removed, pool } = await rotateDirectory(dir, policy());
    for (const [name, reasons] of kept) say(`  keep   ${name} (${reasons.join(', ')})`);
    for (const name of removed) say(`  delete ${name}`);
    say(`rotate ${dir}: kept ${kept.size}, deleted ${removed.length}; attachment files no kept archive needs: ${pool.removed} deleted (${pool.bytes} bytes)`);
  };
  const offsite = () => {
    if (!config.BACKUP_S3_URL) throw Object.assign(new Error('BACKUP_S3_URL is not set: no off-site storage configured'), { name: 'ConfigError' });
    return new OffsiteStore({ url: config.BACKUP_S3_URL, endpoint: config.BACKUP_S3_ENDPOINT, region: config.BACKUP_S3_REGION });
  };
  /** Uploads an archive (verified when its .verified marker lies beside it), reports, rotates there. */
  const push = async (archive: string) => {
    const store = offsite();
    try {
      const verified = await access(`${archive}.verified`).then(() => true, () => false);
      const started = Date.now();
      const { bytes, poolFiles, poolBytes } = await store.push(archive, verified);
      say(`push ${path.basename(archive)} → ${store.where()}: ${bytes} bytes${verified ? ', verified' : ''}, ${poolFiles} attachment files new there (${poolBytes} bytes), ${((Date.now() - started) / 1000).toFixed(1)} s`);
      // As after a backup: the copy is made, metrics that cannot be exported do not stop its rotation.
      await exportMetrics(offsiteMetrics({ finishedAt: new Date(), bytes }), { textfile: config.BACKUP_METRICS_TEXTFILE?.replace(/(\.prom)?$/, '-offsite.prom'), pushgateway: config.PUSHGATEWAY_URL }).catch((error: unknown) => {
        log.warn({ err: (error as Error).message }, 'could not export the off-site metrics');
      });
      const { kept, removed, poolRemoved } = await store.rotate(policy());
      for (const name of removed) say(`  delete ${store.where()}${name}`);
      say(`rotate ${store.where()}: kept ${kept.size}, deleted ${removed.length}; attachment files no kept archive needs: ${poolRemoved} deleted`);
    } finally {
      store.close();
    }
  };
  /**
   * A run that fails (an error, or verify finding a difference) says so to the monitoring:
   * `backup_last_failure_timestamp_seconds` (alert BackupLastRunFailed), beside the last success,
   * which it leaves as it was.
   */
  const reportingFailure = async (run: () => Promise<number>): Promise<number> => {
    let code = 1;
    try {
      code = await run();
      return code;
    } finally {
      if (code !== 0) {
        await exportMetrics(failureMetrics(new Date()), { textfile: config.BACKUP_METRICS_TEXTFILE?.replace(/(\.prom)?$/, '-failure.prom'), pushgateway: config.PUSHGATEWAY_URL }).catch((error: unknown) => {
          log.warn({ err: (error as Error).message }, 'could not export the failure metric');
        });
      }
    }
  };
  switch (command) {
    case 'push':
      await push(target);
      return 0;
    case 'pull': {
      const store = offsite();
      try {
        say(`pull ${await store.pull(target, extra!)}: SHA-256 checked`);
      } finally {
        store.close();
      }
      return 0;
    }
    case 'backup':
      return reportingFailure(async () => {
        await backup();
        return 0;
      });
    case 'daily':
      // The scheduled job (issue 20: the CronJob ran backup only, so nothing was verified or
      // rotated and the volume filled). Rotation runs even when verify fails: it never deletes the
      // newest verified archive, so the last good one stays whatever happened tonight.
      return reportingFailure(async () => {
        const archive = await backup();
        // A verify that throws (a corrupt archive, a pool file missing, pg_restore failing) is a
        // failed verify too: rotation and the off-site copy still run (before, a failure that kept
        // happening stopped both, and the volume filled).
        const ok = await verify(archive).catch((error: unknown) => {
          const e = error as Error;
          process.stderr.write(`backup: verify ${archive} failed: ${e instanceof CorruptArchiveError ? e.message : (e.stack ?? e.message)}\n`);
          return false;
        });
        await rotate(target);
        // Off-site after the local work: an unreachable bucket fails the run (and, after 26 h,
        // BackupOffsiteNotRun fires), but never costs tonight's local archive.
        if (config.BACKUP_S3_URL) await push(archive);
        return ok ? 0 : 1;
      });
    case 'restore': {
      const report = await runRestore(config, target, { force: values.force, childEnv: process.env }, log);
      say(`restored ${target} (namespace ${report.manifest.namespace} → ${config.PARLEY_NAMESPACE}) in ${(report.durationMs / 1000).toFixed(1)} s`);
      say(`  replayed after the checkpoints: ${Object.entries(report.replayed).map(([p, n]) => `${p} ${n}`).join(', ') || 'nothing'}`);
      say(`  cleared: ${report.sessionsCleared} sessions, ${report.resetTokensCleared} reset tokens; retention pass done`);
      return 0;
    }
    case 'verify':
      return (await verify(target)) ? 0 : 1;
    case 'rotate':
      await rotate(target);
      return 0;
    default:
      process.stderr.write(`unknown command ${command}\n${USAGE}\n`);
      return 2;
  }
}

// Settings from .env (or --env-file / PARLEY_ENV_FILE) under the environment's own.
Promise.resolve()
  .then(() => applyEnvFile())
  .then(() => main(withoutEnvFileArgs(process.argv.slice(2))))
  .then((code) => process.exit(code))
  .catch((error: unknown) => {
    const e = error as Error;
    const known = e instanceof CorruptArchiveError || e instanceof TargetNotEmptyError || e instanceof ServicesRunningError || e instanceof RetentionMissingError || e instanceof RestoreCheckError || e.name === 'ConfigError' || e.name === 'EnvFileError';
    process.stderr.write(`backup: ${known ? e.message : (e.stack ?? e.message)}\n`);
    process.exit(e.name === 'ConfigError' || e.name === 'EnvFileError' ? 2 : 1);
  });
