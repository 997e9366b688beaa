#!/usr/bin/env node
// Walks the operations guide's path on this machine as an operator would (issue 20), and fails on
// the first step that does not hold. Run by .ci/run after the build; needs the servers of `npm test`.
//   1. a production install: the built tree, `npm ci --omit=dev` (no TypeScript, no turbo);
//   2. settings from its `.env` only (the environment carries none of Parley's);
//   3. the services started there with `parley`, one at a time, each on its own metrics port;
//   4. traffic: two users, a chat, messages;
//   5. the retention pass as the guide's cron line runs it (docs/retention.md, `/etc/cron.d/parley-retention`,
//      read from the doc): the `.env` retention days are the ones applied, and its metrics reach a
//      Pushgateway (Debian's prometheus-pushgateway);
//   6. the nightly backup as the guide's systemd unit runs it (docs/backup.md, `parley-backup.service`,
//      read from the doc): backup, verify, rotate; its metrics reach the Pushgateway and the textfile;
//      the other two recipes (backup's cron line, retention's unit) are parsed and their schedules
//      and commands checked, so a doc that drifts from the code fails here;
//   7. the alert rules evaluated by a real Prometheus (Debian's) on what the jobs pushed and the
//      services export: every rule healthy, the jobs' alerts and ServiceDown neither pending nor
//      firing, the jobs' metrics present;
//   8. a restore into an empty database and namespace: the messages are back.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();
const say = (line) => console.log(`operator-path: ${line} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
const children = [];
const work = mkdtempSync(path.join(os.tmpdir(), 'parley-operator-'));
const id = Math.random().toString(36).slice(2, 8);
const ns = `ops${id}`;
const db = `parley_ops_${id}`;
const dbUrl = (name) => `postgres://postgres@127.0.0.1:5432/${name}`;
const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

const freePort = () =>
  new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}
function fail(message) {
  throw new Error(message);
}

/** What an operator's shell has: PATH and HOME, none of Parley's settings (they come from .env). */
const bareEnv = { PATH: process.env.PATH, HOME: process.env.HOME ?? work };
const install = path.join(work, 'install');

function start(name, extra) {
  const child = spawn(process.execPath, [path.join(install, 'bin', 'parley.mjs'), name], { cwd: install, env: { ...bareEnv, ...extra }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c.toString()).slice(-4000)));
  child.on('exit', (code) => code !== null && code !== 0 && children.includes(child) && console.error(`operator-path: ${name} exited ${code}\n${stderr}`));
  children.push(child);
  return child;
}
function parley(args, extra = {}) {
  return execFileSync(process.execPath, [path.join(install, 'bin', 'parley.mjs'), ...args], { cwd: install, env: { ...bareEnv, ...extra }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
async function api(base, method, route, body, token) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}


// ------------------------------------------------ the guide's scheduled-job recipes, from the docs
/** The first line of the code block headed `# /etc/cron.d/<name>` in `doc`: schedule, user, command. */
function cronRecipe(doc, name) {
  const lines = readFileSync(path.join(repo, doc), 'utf8').split('\n');
  const at = lines.findIndex((l) => l.trim() === `# /etc/cron.d/${name}` || l.trim().startsWith('# m h dom mon dow'));
  const line = lines.slice(at + 1).find((l) => l.trim() && !l.trim().startsWith('#'));
  if (at < 0 || !line) fail(`${doc}: no cron line for ${name}`);
  const fields = line.trim().split(/\s+/);
  return { schedule: fields.slice(0, 5).join(' '), user: fields[5], command: fields.slice(6).join(' ') };
}
/** The [Service] settings of the unit headed `# /etc/systemd/system/<unit>` in `doc`. */
function systemdRecipe(doc, unit) {
  const lines = readFileSync(path.join(repo, doc), 'utf8').split('\n');
  const at = lines.findIndex((l) => l.trim() === `# /etc/systemd/system/${unit}`);
  if (at < 0) fail(`${doc}: no unit ${unit}`);
  const service = { Environment: [] };
  for (const l of lines.slice(at + 1)) {
    if (l.startsWith('# /etc/') || l.startsWith('```')) break;
    const m = /^(\w+)=(.*)$/.exec(l.trim());
    if (!m) continue;
    if (m[1] === 'Environment') service.Environment.push(m[2]);
    else service[m[1]] = m[2];
  }
  if (!service.ExecStart) fail(`${doc}: ${unit} has no ExecStart`);
  return service;
}
/** The `parley <command>` a recipe runs must exist (bin/parley.mjs lists them). */
function checkParleyCommand(where, command) {
  const sub = /bin\/parley\.mjs (\w+)/.exec(command)?.[1];
  const known = readFileSync(path.join(repo, 'bin', 'parley.mjs'), 'utf8');
  if (!sub || !new RegExp(`^\\s+${sub}: \\{`, 'm').test(known)) fail(`${where} runs "${command}": no such parley command`);
}
/** The recipes' fixed paths, mapped into this run's folders. */
function localPaths(text, map) {
  let out = text;
  for (const [from, to] of Object.entries(map)) out = out.split(from).join(to);
  return out;
}

try {
  // 0. A Pushgateway, as the monitoring compose file runs one.
  if (!existsSync('/usr/bin/prometheus-pushgateway')) {
    say('installing prometheus-pushgateway (Debian)');
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'prometheus-pushgateway'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    // Debian's package may start its own daemon on :9091 (a metrics port of ours): stop it.
    try {
      execFileSync('pkill', ['-f', '^/usr/bin/prometheus-pushgateway']);
    } catch {
      /* not running */
    }
  }
  const pushPort = await freePort();
  const pushgateway = spawn('/usr/bin/prometheus-pushgateway', [`--web.listen-address=127.0.0.1:${pushPort}`, `--persistence.file=${path.join(work, 'push.db')}`], { stdio: 'ignore' });
  children.push(pushgateway);
  const pushUrl = `http://127.0.0.1:${pushPort}`;
  await until('the Pushgateway', async () => (await fetch(`${pushUrl}/-/ready`)).ok);

  // 1. A production install: the built tree without dev dependencies.
  mkdirSync(install);
  for (const entry of ['package.json', 'package-lock.json', 'bin', 'scripts', 'packages', 'services', 'clients']) {
    cpSync(path.join(repo, entry), path.join(install, entry), { recursive: true, filter: (src) => !src.includes(`${path.sep}node_modules`) && !src.endsWith('.turbo') });
  }
  execFileSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: install, stdio: 'ignore' });
  if (existsSync(path.join(install, 'node_modules', 'typescript')) || existsSync(path.join(install, 'node_modules', 'turbo'))) fail('the production install has dev dependencies');
  say('production install made (npm ci --omit=dev)');

  // 2. Settings from .env only.
  const port = await freePort();
  const files = path.join(work, 'files');
  writeFileSync(
    path.join(install, '.env'),
    [
      `NATS_URL=${natsUrl}`,
      `DATABASE_URL=${dbUrl(db)}`,
      `PARLEY_NAMESPACE=${ns}`,
      `PORT=${port}`,
      `ATTACHMENTS_DIR=${files}`,
      `MAIL_DIR=${path.join(work, 'mail')}`,
      'MESSAGE_RETENTION_DAYS=30',
      `PUSHGATEWAY_URL=${pushUrl}`,
      'LOG_LEVEL=warn',
      '',
    ].join('\n'),
  );

  // 3. The services, one by one, each with its own metrics port (the guide's "run them separately").
  const metrics = {};
  for (const name of ['users', 'messages', 'gateway']) {
    metrics[name] = await freePort();
    start(name, { METRICS_PORT: String(metrics[name]) });
    await until(`${name} to be ready`, async () => (await fetch(`http://127.0.0.1:${metrics[name]}/readyz`)).ok, 60_000);
  }
  say('services ready (settings from .env)');

  // 4. Traffic.
  const base = `http://127.0.0.1:${port}`;
  const users = [];
  for (const name of [`ann${id}`, `bob${id}`]) {
    const r = await api(base, 'POST', '/api/v1/auth/register', { username: name, email: `${name}@example.test`, password: 'operator path passphrase' });
    if (r.status !== 201) fail(`register ${name}: ${r.status} ${JSON.stringify(r.body)}`);
    users.push(r.body);
  }
  const chat = await api(base, 'POST', '/api/v1/chats', { type: 'direct', userId: users[1].user.id }, users[0].accessToken);
  if (chat.status !== 201) fail(`chat: ${chat.status}`);
  for (let i = 0; i < 5; i++) {
    const sent = await api(base, 'POST', `/api/v1/chats/${chat.body.id}/messages`, { clientMsgId: `op-${i}`, body: `operator path message ${i}` }, users[0].accessToken);
    if (sent.status !== 201) fail(`send: ${sent.status}`);
  }
  say('two users, a chat, five messages');

  // 5. The retention pass, as the guide's cron line runs it (cron's bare environment, its shell).
  const { Cron } = await import('croner');
  const paths = { '/opt/parley': install, '/var/log/parley': path.join(work, 'log'), '/srv/backups': path.join(work, 'backups'), '/etc/parley/env': path.join(install, '.env'), '/var/lib/node_exporter/textfile': path.join(work, 'textfile'), '/usr/bin/node': process.execPath };
  const retentionCron = cronRecipe('docs/retention.md', 'parley-retention');
  const backupCron = cronRecipe('docs/backup.md', 'parley-backup');
  for (const [doc, recipe] of [['retention.md', retentionCron], ['backup.md', backupCron]]) {
    new Cron(recipe.schedule, { paused: true }); // throws on a schedule cron would not take
    checkParleyCommand(`${doc}'s cron line`, recipe.command);
  }
  if (retentionCron.schedule !== '0 3 * * *' || backupCron.schedule !== '0 2 * * *') fail(`the cron lines run at ${retentionCron.schedule} and ${backupCron.schedule}, not the guide's 03:00 and 02:00`);
  mkdirSync(path.join(work, 'log'));
  const now = new Date();
  execFileSync('sh', ['-c', localPaths(retentionCron.command, paths)], { env: bareEnv, stdio: 'ignore' });
  // The pass's report went to the cron line's log file: its message cutoff is .env's 30 days.
  const logged = readFileSync(path.join(work, 'log', 'retention.log'), 'utf8');
  const cutoff = Date.parse(/messages < (\S+?),/.exec(logged)?.[1] ?? '');
  const expected = now.getTime() - 30 * 86400_000;
  if (!(Math.abs(cutoff - expected) < 120_000)) fail(`the cron line's pass used messages cutoff ${new Date(cutoff).toISOString()}, not .env's 30 days:\n${logged}`);
  const pushed = async (metric, job) => {
    const text = await (await fetch(`${pushUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${metric}{`) && l.includes(`job="${job}"`));
    return line && Number(line.split(' ').pop());
  };
  const retentionSuccess = await until('the retention metrics on the Pushgateway', () => pushed('retention_last_success_timestamp_seconds', 'parley_retention'));
  if (retentionSuccess * 1000 < now.getTime() - 60_000) fail(`retention_last_success is ${retentionSuccess}, not this run`);
  say('retention.md\'s cron line ran the pass: .env\'s 30 days applied, last success on the Pushgateway');

  // 6. The nightly backup, as the guide's systemd unit runs it: its working directory, its
  // EnvironmentFile (here the install's .env) and Environment lines, its ExecStart.
  const backups = path.join(work, 'backups');
  const unit = systemdRecipe('docs/backup.md', 'parley-backup.service');
  const retentionUnit = systemdRecipe('docs/retention.md', 'parley-retention.service');
  checkParleyCommand('retention.md\'s systemd unit', retentionUnit.ExecStart);
  checkParleyCommand('backup.md\'s systemd unit', unit.ExecStart);
  mkdirSync(path.join(work, 'textfile'));
  const unitEnv = { ...bareEnv };
  for (const line of readFileSync(localPaths(unit.EnvironmentFile, paths), 'utf8').split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) unitEnv[m[1]] = m[2];
  }
  for (const assignment of unit.Environment) {
    const [key, ...value] = localPaths(assignment, paths).split('=');
    unitEnv[key] = value.join('=');
  }
  const [exe, ...args] = localPaths(unit.ExecStart, paths).split(/\s+/);
  const daily = execFileSync(exe, args, { cwd: localPaths(unit.WorkingDirectory, paths), env: unitEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const textfile = unitEnv.BACKUP_METRICS_TEXTFILE;
  if (!textfile || !readFileSync(textfile, 'utf8').includes('backup_last_success_timestamp_seconds')) fail(`the unit's textfile ${textfile} has no backup_last_success_timestamp_seconds`);
  if (!/^verify .*: OK/m.test(daily)) fail(`parley daily did not verify:\n${daily}`);
  const archives = readdirSync(backups).filter((f) => f.endsWith('.tar.gz'));
  if (archives.length !== 1 || !existsSync(path.join(backups, `${archives[0]}.verified`))) fail(`backups folder holds ${readdirSync(backups).join(', ')}`);
  await until('the backup metrics on the Pushgateway', () => pushed('backup_last_success_timestamp_seconds', 'parley_backup'));
  say(`backup.md's systemd unit ran parley daily: ${archives[0]} written, verified, rotated; last success on the Pushgateway and in the textfile`);

  // 7. The alerts, evaluated: Prometheus with the shipped rules, scraping the Pushgateway (as
  // prometheus.yml does, honor_labels) and the three services, every second.
  if (!existsSync('/usr/bin/prometheus')) {
    say('installing prometheus (Debian)');
    const pids = () => {
      try {
        return execFileSync('pgrep', ['-x', 'prometheus'], { encoding: 'utf8' }).split('\n').filter(Boolean);
      } catch {
        return []; // none running
      }
    };
    const before = new Set(pids());
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'prometheus'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    // Debian's package may start its own daemon on :9090 (a metrics port of ours): stop it.
    for (const pid of pids()) if (!before.has(pid)) process.kill(Number(pid));
  }
  const promPort = await freePort();
  const target = (port) => `127.0.0.1:${port}`;
  writeFileSync(
    path.join(work, 'prometheus.yml'),
    JSON.stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: [path.join(repo, 'deploy', 'monitoring', 'rules', '*.yml')],
      scrape_configs: [
        { job_name: 'pushgateway', honor_labels: true, static_configs: [{ targets: [target(pushPort)] }] },
        ...['gateway', 'users', 'messages'].map((name) => ({ job_name: name, static_configs: [{ targets: [target(metrics[name])] }] })),
      ],
    }),
  );
  children.push(spawn('/usr/bin/prometheus', [`--config.file=${path.join(work, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(work, 'tsdb')}`, `--web.listen-address=${target(promPort)}`], { stdio: 'ignore' }));
  const prom = async (route) => (await (await fetch(`http://${target(promPort)}${route}`)).json()).data;
  let groups = [];
  const rules = await until('Prometheus to evaluate every rule twice on scraped data', async () => {
    groups = (await prom('/api/v1/rules')).groups;
    const all = groups.flatMap((g) => g.rules);
    const up = (await prom('/api/v1/query?query=up')).result;
    const evaluated = all.length > 0 && all.every((r) => r.lastEvaluation && !r.lastEvaluation.startsWith('0001'));
    return evaluated && up.length === 4 && up.every((u) => u.value[1] === '1') ? all : undefined;
  }, 60_000);
  await sleep(2_000); // one more evaluation after every target answered
  const unhealthy = rules.filter((r) => r.health !== 'ok');
  if (unhealthy.length > 0) fail(`rules that do not evaluate: ${unhealthy.map((r) => `${r.name}: ${r.lastError}`).join('; ')}`);
  // The jobs' alerts (a metric name that drifted shows as NeverSucceeded pending at once) and
  // ServiceDown are decided by this run; the traffic alerts (error rate, latency) depend on the
  // machine's speed over a few requests, so they are evaluated (healthy) but not judged.
  const judged = new Set([...groups.filter((g) => g.file.endsWith('jobs.yml')).flatMap((g) => g.rules.map((r) => r.name)), 'ServiceDown']);
  const active = (await prom('/api/v1/alerts')).alerts.filter((a) => judged.has(a.labels.alertname));
  if (active.length > 0) fail(`alerts ${active.map((a) => `${a.labels.alertname} (${a.state})`).join(', ')} on a healthy installation whose jobs just succeeded`);
  for (const metric of ['backup_last_success_timestamp_seconds', 'retention_last_success_timestamp_seconds']) {
    const found = (await prom(`/api/v1/query?query=${metric}`)).result;
    if (found.length === 0) fail(`${metric} did not reach Prometheus through the Pushgateway`);
  }
  say(`alerts evaluated by Prometheus: ${rules.length} rules healthy; the jobs' ${judged.size - 1} alerts and ServiceDown neither pending nor firing; the jobs' metrics scraped from the Pushgateway`);

  // 8. Restore into an empty database and namespace (the environment over .env, as documented).
  for (const child of children.splice(1)) child.kill('SIGTERM');
  await sleep(1000);
  const restoredNs = `${ns}r`;
  parley(['restore', path.join(backups, archives[0])], { PARLEY_NAMESPACE: restoredNs, DATABASE_URL: dbUrl(`${db}_r`), ATTACHMENTS_DIR: path.join(work, 'restored-files'), METRICS_PORT: '0' });
  const count = execFileSync('psql', [dbUrl(`${db}_r`), '-tAc', 'SELECT count(*) FROM messages.messages'], { encoding: 'utf8' }).trim();
  if (count !== '5') fail(`the restored database holds ${count} messages, not 5`);
  say('parley restore: the five messages are back in a new database and namespace');
  say('the operator path holds');
} catch (error) {
  console.error(`operator-path: FAILED: ${error.message}`);
  process.exitCode = 1;
} finally {
  for (const child of children) child.kill('SIGTERM');
  await sleep(500);
  for (const name of [db, `${db}_r`]) {
    try {
      execFileSync('psql', [dbUrl('postgres'), '-qc', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], { stdio: 'ignore' });
    } catch {
      /* best effort */
    }
  }
  // The namespaces' streams go too (an open bus here, as the tests use).
  try {
    const { connect } = await import('@nats-io/transport-node');
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: natsUrl });
    const jsm = await jetstreamManager(nc);
    const ours = new RegExp(`^(KV_)?${ns}r?_`);
    for await (const name of jsm.streams.names()) if (ours.test(name)) await jsm.streams.delete(name).catch(() => {});
    await nc.close();
  } catch {
    /* best effort */
  }
  rmSync(work, { recursive: true, force: true });
}
