#!/usr/bin/env node
// Backup, verify and restore times for a namespace holding N messages (default 1,000,000):
// seeds them straight into the chats stream in pipelined batches (valid MessageSent events, as
// the messages service would append them), waits for the projection, then times
//   backup (live: users, messages and gateway keep running), verify, and restore into a fresh
//   database and namespace (which replays past the checkpoints and runs the retention pass).
//
//   npm run bench:backup -- [--messages 1000000] [--chats 100]
//
// Starts its own services on a fresh database and namespace and removes everything at the end.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { apiClient, dropScratch, root, serviceProcesses, sleep } from './lib/scratch.mjs';

const { values: args } = parseArgs({ options: { messages: { type: 'string', default: '1000000' }, chats: { type: 'string', default: '100' } } });
const total = Number(args.messages);
const chatCount = Number(args.chats);
const id = randomBytes(4).toString('hex');
const ns = `benchb${id}`;
const restoredNs = `benchr${id}`;
const dbUrl = (name) => `postgres://postgres@127.0.0.1:5432/${name}`;
const work = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-backup-'));
const env = {
  ...process.env,
  PARLEY_NAMESPACE: ns,
  DATABASE_URL: dbUrl(`parley_benchb_${id}`),
  NATS_URL: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  JWT_SECRET: randomBytes(32).toString('hex'),
  LOG_LEVEL: 'warn',
  // Its users all register from this one address.
  REGISTER_MAX_PER_ADDRESS: '1000000',
  // Its chats are all created by one or two accounts.
  GROUPS_PER_DAY: '1000000',
  PORT: '18480',
  REDIS_URL: '',
  ATTACHMENTS_DIR: path.join(work, 'files'),
  BACKUP_TMP_DIR: work,
};
const restoredEnv = { ...env, PARLEY_NAMESPACE: restoredNs, DATABASE_URL: dbUrl(`parley_benchr_${id}`), ATTACHMENTS_DIR: path.join(work, 'restored-files') };
const base = `http://127.0.0.1:${env.PORT}`;
const services = serviceProcesses(env);
const start = services.start;
const api = apiClient(base);
/** Runs one backup command; resolves with its wall time, exit code and output. */
const command = (args, extraEnv = env) =>
  new Promise((resolve) => {
    const t = performance.now();
    const child = spawn(process.execPath, [path.join(root, 'services/backup/dist/main.js'), ...args], { env: extraEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ seconds: +((performance.now() - t) / 1000).toFixed(1), code, out: out.trim() }));
  });
const words = ['deploy', 'release', 'lunch', 'review', 'meeting', 'coffee', 'budget', 'design', 'bug', 'test', 'ship', 'plan', 'сообщение', 'релиз', 'обед'];

let nc;
try {
  start('users', { METRICS_PORT: '19491' });
  start('messages', { METRICS_PORT: '19492' });
  start('gateway', { METRICS_PORT: '19490' });
  let a;
  for (let i = 0; ; i++) {
    const r = await api('POST', '/api/v1/auth/register', null, { username: `b${id}`, email: `b${id}@bench.test`, password: 'bench-password-1' }).catch(() => ({ status: 0 }));
    if (r.status === 201) {
      a = r.body;
      break;
    }
    if (i > 300) throw new Error(`register: ${r.status} ${JSON.stringify(r.body)}`);
    await sleep(200);
  }
  const chats = [];
  for (let c = 0; c < chatCount; c++) chats.push((await api('POST', '/api/v1/chats', a.accessToken, { type: 'group', title: `chat ${c}`, memberIds: [] })).body.id);

  // Seed: this script is the only writer of these chats while seeding, so it assigns each chat's
  // seqs itself and pipelines publishes (NATS keeps one connection's publishes in order).
  nc = await connect({ servers: env.NATS_URL });
  const js = jetstream(nc);
  const seeded = performance.now();
  const window = [];
  for (let i = 0; i < total; i++) {
    const chatId = chats[i % chatCount];
    const seq = Math.floor(i / chatCount) + 2;
    const body = `${words[i % words.length]} note ${i} ${words[(i * 7) % words.length]} with some filler text to look like a message`;
    const event = {
      type: 'MessageSent', version: 1, chatId, seq,
      data: { messageId: crypto.randomUUID(), senderId: a.user.id, clientMsgId: `b${i}`, body, replyTo: null, attachmentIds: [] },
      meta: { eventId: crypto.randomUUID(), occurredAt: new Date().toISOString(), actorId: a.user.id, correlationId: 'bench', causationId: null },
    };
    window.push(js.publish(`${ns}.chat.${chatId}`, JSON.stringify(event), { msgID: `send:${chatId}:${a.user.id}:b${i}` }));
    if (window.length >= 1000) await Promise.all(window.splice(0));
    if (i > 0 && i % 100_000 === 0) console.error(`seeded ${i} (${((performance.now() - seeded) / 1000).toFixed(0)} s)`);
  }
  await Promise.all(window);
  const published = (performance.now() - seeded) / 1000;
  const db = new pg.Client({ connectionString: env.DATABASE_URL });
  await db.connect();
  for (;;) {
    const n = (await db.query('SELECT count(*)::int AS n FROM messages.messages')).rows[0].n;
    if (n >= total) break;
    await sleep(1000);
  }
  const projected = (performance.now() - seeded) / 1000;
  await db.end();
  console.error(`seeded ${total} messages in ${chatCount} chats: published in ${published.toFixed(0)} s, projected by ${projected.toFixed(0)} s`);

  const backup = await command(['backup', path.join(work, 'archives')]);
  if (backup.code !== 0) throw new Error(`backup failed: ${backup.out}`);
  const archive = /backup (\S+):/.exec(backup.out)[1];
  const size = statSync(archive).size;
  console.error(backup.out);
  const verify = await command(['verify', archive]);
  console.error(verify.out);
  const restore = await command(['restore', archive], restoredEnv);
  console.error(restore.out);

  console.log(`\nBackup of ${total.toLocaleString('en')} messages in ${chatCount} chats (${os.cpus()[0]?.model}, ${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(1)} at the end):\n`);
  console.log('| step | seconds | result |\n| --- | --- | --- |');
  console.log(`| backup (services running) | ${backup.seconds} | ${(size / 1024 / 1024).toFixed(0)} MiB archive |`);
  console.log(`| verify | ${verify.seconds} | exit ${verify.code} |`);
  console.log(`| restore | ${restore.seconds} | exit ${restore.code}${restore.code === 0 ? '' : `: ${restore.out.split('\n').find((l) => l.startsWith('backup:'))?.slice(0, 200)}`} |`);
  console.log(JSON.stringify({ messages: total, chats: chatCount, publishSeconds: +published.toFixed(1), projectedSeconds: +projected.toFixed(1), archiveBytes: size, backup: backup.seconds, verify: verify.seconds, verifyExit: verify.code, restore: restore.seconds, restoreExit: restore.code }));
} finally {
  await services.stopAll();
  await nc?.close();
  await dropScratch({ natsUrl: env.NATS_URL, adminUrl: dbUrl('postgres'), databases: [`parley_benchb_${id}`, `parley_benchr_${id}`], namespaces: [ns, restoredNs] });
  rmSync(work, { recursive: true, force: true });
}
