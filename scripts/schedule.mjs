#!/usr/bin/env node
// `parley schedule`: runs the nightly jobs on their schedules in one long-lived process, for hosts
// and compose installations that have no cron of their own (issue 20: nothing scheduled retention
// or backups under compose or `npm start`). Kubernetes uses its CronJobs instead.
//
//   SCHEDULE_BACKUP   cron expression, UTC [0 2 * * *]: `parley daily $BACKUP_DIR` (backup, verify, rotate)
//   SCHEDULE_CLEANUP  cron expression, UTC [0 3 * * *]: `parley cleanup` (one retention pass)
//   BACKUP_DIR        [/backups]
// A schedule of `off` disables that job. A run still going when the next is due is not doubled
// (as the CronJobs' concurrencyPolicy: Forbid). Each run is a child process with this environment;
// its outcome is one JSON log line, and the jobs push their own metrics (PUSHGATEWAY_URL).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Cron } from 'croner';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const parley = path.join(root, 'bin', 'parley.mjs');
// Settings from --env-file, PARLEY_ENV_FILE or .env under the environment's own, as every command
// reads them; the jobs inherit them. Before, the schedule and its jobs read the environment alone:
// `parley schedule --env-file /etc/parley.env` kept the default times and ran jobs without the file.
const { applyEnvFile } = await import(pathToFileURL(path.join(root, 'packages', 'config', 'dist', 'index.js')).href);
applyEnvFile();
const env = process.env;
const log = (fields) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), service: 'scheduler', ...fields })}\n`);

const jobs = [
  { name: 'backup', schedule: env.SCHEDULE_BACKUP || '0 2 * * *', args: ['daily', env.BACKUP_DIR || '/backups'] },
  { name: 'cleanup', schedule: env.SCHEDULE_CLEANUP || '0 3 * * *', args: ['cleanup'] },
];

const running = new Set();
function run(job) {
  return new Promise((resolve) => {
    const started = Date.now();
    log({ level: 'info', job: job.name, msg: 'job started' });
    const child = spawn(process.execPath, [parley, ...job.args], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    running.add(child);
    child.on('exit', (code, signal) => {
      running.delete(child);
      const ok = code === 0;
      log({ level: ok ? 'info' : 'error', job: job.name, code, signal, durationMs: Date.now() - started, msg: ok ? 'job done' : 'job failed' });
      resolve();
    });
  });
}

const crons = [];
for (const job of jobs) {
  if (job.schedule === 'off') {
    log({ level: 'info', job: job.name, msg: 'job disabled' });
    continue;
  }
  let cron;
  try {
    cron = new Cron(job.schedule, { timezone: 'UTC', protect: true }, () => run(job));
  } catch (error) {
    log({ level: 'fatal', job: job.name, schedule: job.schedule, msg: `invalid schedule: ${error.message}` });
    process.exit(2);
  }
  crons.push(cron);
  log({ level: 'info', job: job.name, schedule: job.schedule, next: cron.nextRun()?.toISOString(), msg: 'job scheduled' });
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const cron of crons) cron.stop();
    for (const child of running) child.kill('SIGTERM');
    log({ level: 'info', msg: `stopping (${signal})`, running: running.size });
    if (running.size === 0) process.exit(0);
    const check = setInterval(() => running.size === 0 && process.exit(0), 200);
    check.unref();
  });
}
