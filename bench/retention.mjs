#!/usr/bin/env node
// Retention under load: seeds N expired messages (with reactions, polls and votes, read receipts
// and attachment files) straight into the chats stream, lets the projection catch up, then runs
// live WebSocket traffic and measures send-to-ack latency before and during one retention pass.
// Reports rows deleted per second and the rise in send-to-ack p99.
//
//   npm run bench:retention -- [--messages 1000000] [--chats 200] [--files 10000] [--rate 100]
//
// "Expired" without waiting a year: the pass runs with `--now` set to 365 days after the end of
// the seeding, so everything seeded is past MESSAGE_RETENTION_DAYS and the live traffic is not.
// Starts its own users, messages and gateway processes on a fresh database and namespace, and
// removes them at the end.
import { spawn } from 'node:child_process';
import { apiClient, dropScratch, root, serviceProcesses, sleep } from './lib/scratch.mjs';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import WebSocket from 'ws';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '1000000' },
    chats: { type: 'string', default: '200' },
    files: { type: 'string', default: '10000' },
    rate: { type: 'string', default: '100' },
    'baseline-seconds': { type: 'string', default: '20' },
    // A V8 CPU profile of the pass's process, written to bench/results/prof-retention-<time>/.
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const total = Number(args.messages);
const chatCount = Number(args.chats);
const fileCount = Math.min(Number(args.files), total);
const rate = Number(args.rate);
const baselineSeconds = Number(args['baseline-seconds']);
const id = randomBytes(4).toString('hex');
const ns = `benchr${id}`;
const dbName = `parley_benchr_${id}`;
const files = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-retention-'));
const env = {
  ...process.env,
  PARLEY_NAMESPACE: ns,
  DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${dbName}`,
  NATS_URL: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  JWT_SECRET: randomBytes(32).toString('hex'),
  LOG_LEVEL: 'warn',
  // Its users all register from this one address.
  REGISTER_MAX_PER_ADDRESS: '1000000',
  // Its chats are all created by one or two accounts.
  GROUPS_PER_DAY: '1000000',
  // Free ports, so that it runs beside anything else (another benchmark, a dev stack).
  PORT: String(20000 + Math.floor(Math.random() * 20000)),
  METRICS_PORT: '0',
  REDIS_URL: '',
  ATTACHMENTS_DIR: files,
  RETENTION_PROJECTION_TIMEOUT_SECONDS: '1800',
};
const base = `http://127.0.0.1:${env.PORT}`;
const services = serviceProcesses(env, (name, code) => {
  console.error(`${name} exited (${code}) during the benchmark`);
  process.exit(1);
});
const start = services.start;
const api = apiClient(base);
const percentile = (sorted, p) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]);
const log = (line) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

/**
 * Open-loop senders: `sockets` connections (under the gateway's per-socket frame rate), together
 * one frame every 1/rate s whatever the acks do; records send-to-ack times by phase.
 */
function liveTraffic(token, chatId, sockets = Math.max(1, Math.ceil(rate / 20))) {
  const sentAt = new Map();
  const samples = [];
  let phase = 'baseline';
  let n = 0;
  let timer;
  const conns = Array.from({ length: sockets }, () => {
    const ws = new WebSocket(`ws://127.0.0.1:${env.PORT}/ws?token=${encodeURIComponent(token)}`);
    ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString());
      if (frame.op !== 'ack') return;
      const t = sentAt.get(frame.clientMsgId);
      if (t) samples.push({ phase: t.phase, at: t.at, ms: performance.now() - t.at });
      sentAt.delete(frame.clientMsgId);
    });
    ws.on('close', (code) => {
      if (timer) console.error(`live socket closed (${code})`);
    });
    return { ws, opened: new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject))) };
  });
  return {
    async start() {
      await Promise.all(conns.map((c) => c.opened));
      const interval = 1000 / rate;
      const t0 = performance.now();
      const tick = () => {
        const due = Math.floor((performance.now() - t0) / interval);
        while (n < due) {
          const clientMsgId = `live-${n}`;
          sentAt.set(clientMsgId, { at: performance.now(), phase });
          conns[n % conns.length].ws.send(JSON.stringify({ op: 'send', chatId, clientMsgId, body: `live message ${n} during the retention benchmark` }));
          n++;
        }
        timer = setTimeout(tick, 2);
      };
      tick();
    },
    setPhase(p) {
      phase = p;
    },
    /** Stops sending, then waits up to 10 s for the acks still on their way (a send made just before is not "unacknowledged"). */
    async stop() {
      clearTimeout(timer);
      timer = undefined;
      for (let waited = 0; sentAt.size > 0 && waited < 10_000; waited += 50) await sleep(50);
      for (const c of conns) c.ws.close();
      return { samples, sent: n, unacked: sentAt.size };
    },
  };
}

let nc;
try {
  start('users');
  start('messages');
  start('gateway');
  for (let i = 0; ; i++) {
    if ((await fetch(`${base}/api/v1/chats`).catch(() => null))?.status === 401) break;
    if (i > 600) throw new Error('gateway did not start within 60 s');
    await sleep(100);
  }
  const accounts = [];
  for (const who of ['a', 'b']) {
    for (let i = 0; ; i++) {
      const r = await api('POST', '/api/v1/auth/register', null, { username: `r${who}${id}`, email: `r${who}${id}@bench.test`, password: 'bench-password-1' });
      if (r.status === 201) {
        accounts.push(r.body);
        break;
      }
      if (i > 100) throw new Error(`register: ${r.status} ${JSON.stringify(r.body)}`);
      await sleep(200);
    }
  }
  const [a, b] = accounts;
  // The member must be projected before a chat can name them: retry the first creations until it is.
  const createChat = async (title) => {
    for (let i = 0; ; i++) {
      const r = await api('POST', '/api/v1/chats', a.accessToken, { type: 'group', title, memberIds: [b.user.id] });
      if (r.status === 201) return r.body.id;
      if (i > 100) throw new Error(`create chat: ${r.status} ${JSON.stringify(r.body)}`);
      await sleep(100);
    }
  };
  const chats = [];
  for (let i = 0; i < chatCount; i++) chats.push(await createChat(`old ${i}`));
  const liveChat = await createChat('live');
  log(`created ${chatCount} chats; seeding ${total.toLocaleString('en')} messages`);

  // Seed: this script is each old chat's only writer while seeding, so it assigns seqs itself
  // (ChatCreated and MemberAdded took seq 1) and pipelines publishes.
  nc = await connect({ servers: env.NATS_URL });
  const js = jetstream(nc);
  const meta = (actor) => ({ eventId: randomUUID(), occurredAt: new Date().toISOString(), actorId: actor, correlationId: 'bench', causationId: null });
  const window = [];
  const publish = async (subject, event, msgId) => {
    window.push(js.publish(subject, JSON.stringify(event), { msgID: msgId }));
    if (window.length >= 1000) await Promise.all(window.splice(0));
  };
  const seqs = new Map(chats.map((c) => [c, 1]));
  const counts = { messages: 0, reactions: 0, polls: 0, votes: 0, attachments: 0, receipts: 0 };
  const seedStart = performance.now();
  const fileEvery = Math.max(1, Math.floor(total / Math.max(1, fileCount)));
  for (let i = 0; i < total; i++) {
    const chatId = chats[i % chatCount];
    const subject = `${ns}.chat.${chatId}`;
    const messageId = randomUUID();
    let seq = seqs.get(chatId) + 1;
    if (i % 100 === 99) {
      const pollId = randomUUID();
      const options = [{ id: 'o1', text: 'yes' }, { id: 'o2', text: 'no' }];
      await publish(subject, { type: 'PollPosted', version: 1, chatId, seq, data: { messageId, senderId: a.user.id, clientMsgId: `p${i}`, pollId, question: `old poll ${i}?`, options, multiple: false }, meta: meta(a.user.id) }, `s:${chatId}:${seq}`);
      seq++;
      await publish(subject, { type: 'PollVoted', version: 1, chatId, seq, data: { pollId, messageId, userId: b.user.id, optionIds: ['o1'] }, meta: meta(b.user.id) }, `s:${chatId}:${seq}`);
      counts.polls++;
      counts.votes++;
    } else {
      let attachmentIds = [];
      if (counts.attachments < fileCount && i % fileEvery === 0) {
        const attachmentId = randomUUID();
        mkdirSync(path.join(files, attachmentId.slice(-2)), { recursive: true });
        writeFileSync(path.join(files, attachmentId.slice(-2), attachmentId), `old file ${i}`);
        await publish(`${ns}.attachment.${attachmentId}`, { type: 'AttachmentUploaded', version: 1, data: { attachmentId, uploaderId: a.user.id, name: `old-${i}.txt`, size: 12, mime: 'text/plain' }, meta: meta(a.user.id) }, `att:${attachmentId}`);
        attachmentIds = [attachmentId];
        counts.attachments++;
      }
      await publish(subject, { type: 'MessageSent', version: 1, chatId, seq, data: { messageId, senderId: a.user.id, clientMsgId: `m${i}`, body: `old message ${i} with some filler text to look like a real one`, replyTo: null, attachmentIds }, meta: meta(a.user.id) }, `s:${chatId}:${seq}`);
      if (i % 10 === 0) {
        seq++;
        await publish(subject, { type: 'ReactionAdded', version: 1, chatId, seq, data: { messageId, userId: b.user.id, emoji: '👍' }, meta: meta(b.user.id) }, `s:${chatId}:${seq}`);
        counts.reactions++;
      }
    }
    counts.messages++;
    seqs.set(chatId, seq);
  }
  for (const chatId of chats) {
    await publish(`${ns}.receipt.${chatId}.${b.user.id}`, { type: 'ReadPositionUpdated', version: 1, data: { chatId, userId: b.user.id, seq: seqs.get(chatId) }, meta: meta(b.user.id) }, `r:${chatId}`);
    counts.receipts++;
  }
  await Promise.all(window);
  const seeded = (performance.now() - seedStart) / 1000;
  log(`seeded in ${seeded.toFixed(1)} s; waiting for the projection`);
  const db = new pg.Client({ connectionString: env.DATABASE_URL });
  await db.connect();
  const rowCount = async () =>
    (
      await db.query(`SELECT (SELECT count(*) FROM messages.messages) + (SELECT count(*) FROM messages.reactions) + (SELECT count(*) FROM messages.polls)
                           + (SELECT count(*) FROM messages.poll_votes) + (SELECT count(*) FROM messages.attachments) + (SELECT count(*) FROM messages.message_attachments)
                           + (SELECT count(*) FROM messages.read_positions) AS n`)
    ).rows[0].n;
  for (;;) {
    const n = (await db.query('SELECT count(*)::int AS n FROM messages.messages')).rows[0].n;
    const r = (await db.query('SELECT count(*)::int AS n FROM messages.read_positions')).rows[0].n;
    if (n >= total && r >= counts.receipts) break;
    await sleep(500);
  }
  const projected = (performance.now() - seedStart) / 1000;
  const rowsBefore = Number(await rowCount());
  log(`projected by ${projected.toFixed(1)} s: ${rowsBefore.toLocaleString('en')} rows`);
  await db.query('ANALYZE');

  // The cutoff sits between the seeded data and the live traffic.
  await sleep(1000);
  const cutoff = new Date();
  await sleep(1000);
  const now = new Date(cutoff.getTime() + 365 * 86_400_000).toISOString();

  const traffic = liveTraffic(a.accessToken, liveChat);
  await traffic.start();
  log(`live traffic at ${rate} msg/s; baseline for ${baselineSeconds} s`);
  await sleep(baselineSeconds * 1000);
  traffic.setPhase('pass');
  log('retention pass starts');
  const passStart = performance.now();
  const output = await new Promise((resolve, reject) => {
    const profile = args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', path.join(root, 'bench', 'results', `prof-retention-${new Date().toISOString().replace(/[:.]/g, '-')}`)] : [];
    const child = spawn(process.execPath, [...profile, path.join(root, 'services', 'retention', 'dist', 'main.js'), '--now', now, '--json'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`cleanup exited ${code}: ${out}`))));
  });
  const passSeconds = (performance.now() - passStart) / 1000;
  traffic.setPhase('after');
  await sleep(2000);
  const live = await traffic.stop();
  const report = JSON.parse(output.trim().split('\n').pop());
  const rowsAfter = Number(await rowCount());
  const liveRows = (await db.query('SELECT count(*)::int AS n FROM messages.messages WHERE chat_id = $1', [liveChat])).rows[0].n;
  const oldLeft = (await db.query('SELECT count(*)::int AS n FROM messages.messages WHERE chat_id <> $1', [liveChat])).rows[0].n;
  const filesLeft = readdirSync(files, { recursive: true }).filter((f) => /[0-9a-f-]{36}$/.test(String(f))).length;
  await db.end();
  const jsm = await jetstreamManager(nc);
  const chatsStream = (await jsm.streams.info(`${ns}_chats`)).state;

  const lat = (phase) => {
    const s = live.samples.filter((x) => x.phase === phase).map((x) => x.ms).sort((x, y) => x - y);
    return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99) };
  };
  const before = lat('baseline');
  const during = lat('pass');
  // Which step of the pass the slow acks fell in: the steps' windows from the report, placed after
  // the process's start-up (the pass's wall time minus its own duration).
  const stepWindows = [];
  let stepAt = passStart + (passSeconds * 1000 - report.durationMs);
  for (const [step, took] of Object.entries(report.stepsMs)) {
    stepWindows.push({ step, from: stepAt, to: stepAt + took });
    stepAt += took;
  }
  const byStep = Object.fromEntries(
    stepWindows.map(({ step, from, to }) => {
      const s = live.samples.filter((x) => x.phase === 'pass' && x.at >= from && x.at < to).map((x) => x.ms).sort((x, y) => x - y);
      return [step, { n: s.length, p99: percentile(s, 99), max: s.at(-1) ?? NaN }];
    }),
  );
  // Nor on disk: the seeded bodies in the stream's block files, when this machine's NATS store is readable.
  const storeDir = path.join(process.env.NATS_STORE_DIR ?? '/var/lib/nats-server', 'jetstream', '$G', 'streams', `${ns}_chats`, 'msgs');
  const bodiesOnDisk = existsSync(storeDir)
    ? readdirSync(storeDir).filter((f) => f.endsWith('.blk')).reduce((n, f) => n + (readFileSync(path.join(storeDir, f)).toString('latin1').match(/filler text to look like a real one/g)?.length ?? 0), 0)
    : null;
  // Nothing older than the cutoff may be left on a chat subject (the purge's promise).
  const leftOld = await (async () => {
    const js = jetstream(nc);
    const consumer = await js.consumers.get(`${ns}_chats`, { filter_subjects: `${ns}.chat.*` });
    const info = await consumer.info();
    let pending = info.num_pending;
    let old = 0;
    while (pending > 0) {
      const batch = await consumer.fetch({ max_messages: Math.min(1000, pending), expires: 2000 });
      for await (const m of batch) {
        pending = m.info.pending;
        if (Date.parse(m.json().meta.occurredAt) < cutoff.getTime()) old++;
        if (pending === 0) break;
      }
    }
    return old;
  })();
  const deletedRows = rowsBefore - (rowsAfter - liveRows);
  const results = {
    machine: `${os.cpus()[0]?.model}, ${os.cpus().length} cores`,
    natsVersion: nc.info?.version,
    seeded: counts,
    seedSeconds: +seeded.toFixed(1),
    projectedSeconds: +projected.toFixed(1),
    rowsBefore,
    rowsDeleted: deletedRows,
    passSeconds: +passSeconds.toFixed(1),
    rowsPerSecond: Math.round(deletedRows / passSeconds),
    streamEventsDeleted: report.streamEvents.chats + report.streamEvents.receipts,
    chatsStreamMessagesLeft: chatsStream.messages,
    chatEventsOlderThanCutoffLeft: leftOld,
    seededBodiesInBlockFiles: bodiesOnDisk,
    ackDuringPassByStep: byStep,
    oldMessagesLeft: oldLeft,
    liveMessagesKept: liveRows,
    filesLeft,
    liveSent: live.sent,
    liveUnacked: live.unacked,
    ackBaseline: before,
    ackDuringPass: during,
    p99Rise: +((during.p99 / before.p99 - 1) * 100).toFixed(1),
    report,
  };
  const ms = (x) => `${x.toFixed(1)} ms`;
  console.log(`\nRetention pass over ${total.toLocaleString('en')} expired messages (${results.machine}), live traffic ${rate} msg/s:\n`);
  console.log('| measure | value |\n| --- | --- |');
  console.log(`| rows deleted (messages, reactions, polls, votes, attachments, links, receipts) | ${deletedRows.toLocaleString('en')} |`);
  console.log(`| pass duration (scan, events, projection, stream compaction, files) | ${passSeconds.toFixed(1)} s |`);
  console.log(`| rows deleted per second | ${results.rowsPerSecond.toLocaleString('en')} |`);
  console.log(`| stream events deleted | ${results.streamEventsDeleted.toLocaleString('en')} |`);
  console.log(`| attachment files left / seeded | ${filesLeft} / ${counts.attachments} |`);
  console.log(`| old messages left / live messages kept | ${oldLeft} / ${liveRows} |`);
  console.log(`| send-to-ack before the pass: p50 / p99 | ${ms(before.p50)} / ${ms(before.p99)} (${before.n} acks) |`);
  console.log(`| send-to-ack during the pass: p50 / p99 | ${ms(during.p50)} / ${ms(during.p99)} (${during.n} acks) |`);
  console.log(`| rise in p99 | ${results.p99Rise} % |`);
  console.log(`| chat events older than the cutoff left in the stream | ${leftOld} |`);
  console.log(`| seeded message bodies left in the stream's block files | ${bodiesOnDisk ?? 'not checked (NATS store not readable)'} |`);
  console.log(`\nPass steps (ms): ${Object.entries(report.stepsMs).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`Purge of the chats stream: ${report.purgeStep === 0 ? 'one request' : `steps of ${report.purgeStep.toLocaleString('en')} sequences`}, ${report.edgeErased ? 'the edge below it erased first' : 'the edge below it left to a later purge'} (NATS ${nc.info?.version ?? 'unknown'})`);
  console.log(`Send-to-ack p99 / max by step (ms): ${Object.entries(byStep).filter(([, v]) => v.n > 0).map(([k, v]) => `${k} ${v.p99.toFixed(1)} / ${v.max.toFixed(1)} (${v.n})`).join(', ')}`);
  console.log(JSON.stringify(results));
  if (oldLeft > 0 || filesLeft > 0 || leftOld > 0 || bodiesOnDisk > 0 || live.unacked > 0) {
    console.error('FAILED: expired data left behind or live sends unacknowledged');
    process.exitCode = 1;
  }
} finally {
  await services.stopAll();
  await nc?.close();
  await dropScratch({ natsUrl: env.NATS_URL, databases: [dbName], namespaces: [ns] });
  rmSync(files, { recursive: true, force: true });
}
