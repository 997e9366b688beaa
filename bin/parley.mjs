#!/usr/bin/env node
// `parley <command>`: Parley's services and jobs from the compiled output, without building
// anything, so that they run the same way in the image (`parley` is on its PATH), in an
// `npm ci --omit=dev` install that was built elsewhere, and in a checkout after `npm run build`
// (issue 20: `npm run cleanup` built first, which fails without dev dependencies).
// Settings: the environment, over `--env-file <path>` / PARLEY_ENV_FILE / `.env` (operations.md#settings).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const dist = (...parts) => path.join(root, ...parts);
const telemetry = pathToFileURL(dist('packages', 'telemetry', 'dist', 'register.js')).href;
const traced = (main) => ['--import', telemetry, main];

const COMMANDS = {
  start: { help: 'gateway, users and messages in the foreground', args: () => [dist('scripts', 'start.mjs')], needs: dist('services', 'gateway', 'dist', 'main.js') },
  gateway: { help: 'the gateway alone', args: () => traced(dist('services', 'gateway', 'dist', 'main.js')) },
  users: { help: 'the users service alone', args: () => traced(dist('services', 'users', 'dist', 'main.js')) },
  messages: { help: 'the messages service alone', args: () => traced(dist('services', 'messages', 'dist', 'main.js')) },
  cleanup: { help: 'one retention pass [--dry-run] [--json] [--now <ISO time>]', args: () => traced(dist('services', 'retention', 'dist', 'main.js')) },
  backup: { help: 'backup <dir>: one archive into <dir>', args: () => [dist('services', 'backup', 'dist', 'main.js'), 'backup'] },
  restore: { help: 'restore <archive> [--force]', args: () => [dist('services', 'backup', 'dist', 'main.js'), 'restore'] },
  verify: { help: 'verify <archive>: restore into scratch and compare', args: () => [dist('services', 'backup', 'dist', 'main.js'), 'verify'] },
  daily: { help: 'daily <dir>: backup, verify it, rotate, and copy off-site with BACKUP_S3_URL (what the scheduled job runs)', args: () => [dist('services', 'backup', 'dist', 'main.js'), 'daily'] },
  rotate: { help: 'rotate <dir>: keep BACKUP_KEEP_DAILY / _WEEKLY / _MONTHLY archives', args: () => [dist('services', 'backup', 'dist', 'main.js'), 'rotate'] },
  push: { help: 'push <archive>: copy it to BACKUP_S3_URL and rotate there', args: () => [dist('services', 'backup', 'dist', 'main.js'), 'push'] },
  pull: { help: 'pull <name|latest> <dir>: fetch an archive from BACKUP_S3_URL, checked', args: () => [dist('services', 'backup', 'dist', 'main.js'), 'pull'] },
  schedule: { help: 'runs daily (SCHEDULE_BACKUP, 02:00 UTC) and cleanup (SCHEDULE_CLEANUP, 03:00 UTC) until stopped', args: () => [dist('scripts', 'schedule.mjs')], needs: dist('services', 'backup', 'dist', 'main.js') },
  rebuild: { help: 'rebuild <users|messages>: replay a projection from the streams (service stopped)', args: () => [dist('scripts', 'rebuild.mjs')], needs: dist('services', 'users', 'dist', 'rebuild.js') },
};

const [command, ...rest] = process.argv.slice(2);
const spec = COMMANDS[command];
if (!spec) {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  console.error(`usage: parley <command> [arguments] [--env-file <path>]\n${Object.entries(COMMANDS).map(([c, s]) => `  ${c.padEnd(width)}  ${s.help}`).join('\n')}`);
  process.exit(2);
}
const args = spec.args();
const needed = spec.needs ?? args.find((a) => a.endsWith('.js') && !a.startsWith('file:'));
if (needed && !existsSync(needed)) {
  console.error(`parley: ${path.relative(root, needed)} is missing: this checkout is not built (npm run build; the image and a built install have it)`);
  process.exit(2);
}
const child = spawn(process.execPath, [...args, ...rest], { stdio: 'inherit', env: process.env });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
