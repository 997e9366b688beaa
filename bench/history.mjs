#!/usr/bin/env node
// History and search on a big chat: loads one chat with N messages (default 100,000) straight into
// its JetStream subject, lets the running projection catch up, then measures the median (and p99)
// time of history pages and searches through the gateway, as a client sees them.
//
//   npm run bench:history -- [--messages 100000] [--requests 200]
//
// Starts its own users, messages and gateway processes on a fresh database and namespace, and
// removes them at the end.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { apiClient, dropScratch, serviceProcesses, sleep } from './lib/scratch.mjs';
import { jetstream } from '@nats-io/jetstream';

const { values: args } = parseArgs({
  options: { messages: { type: 'string', default: '100000' }, requests: { type: 'string', default: '200' } },
});
const total = Number(args.messages);
const requests = Number(args.requests);
const id = randomBytes(4).toString('hex');
const ns = `benchh${id}`;
const dbName = `parley_benchh_${id}`;
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
  PORT: '18380',
  REDIS_URL: '',
};
const base = `http://127.0.0.1:${env.PORT}`;
const services = serviceProcesses(env);
const start = services.start;
const api = apiClient(base);
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const words = ['deploy', 'release', 'lunch', 'review', 'meeting', 'coffee', 'budget', 'design', 'bug', 'test', 'ship', 'plan', 'сообщение', 'релиз', 'обед'];

let nc;
try {
  start('users', { METRICS_PORT: '19391' });
  start('messages', { METRICS_PORT: '19392' });
  start('gateway', { METRICS_PORT: '19390' });
  for (let i = 0; ; i++) {
    if ((await fetch(`${base}/api/v1/chats`).catch(() => null))?.status === 401) break;
    if (i > 200) throw new Error('gateway did not start');
    await sleep(100);
  }
  // The gateway may be up before users and messages answer: retry until registration works.
  let a;
  for (let i = 0; ; i++) {
    const r = await api('POST', '/api/v1/auth/register', null, { username: `h${id}`, email: `h${id}@bench.test`, password: 'bench-password-1' });
    if (r.status === 201) {
      a = r.body;
      break;
    }
    if (i > 100) throw new Error(`register: ${r.status} ${JSON.stringify(r.body)}`);
    await sleep(200);
  }
  const chat = (await api('POST', '/api/v1/chats', a.accessToken, { type: 'group', title: 'big', memberIds: [] })).body;

  // Load: this script is the chat's only writer while loading, so it assigns seqs itself and
  // pipelines publishes (NATS keeps one connection's publishes in order).
  nc = await connect({ servers: env.NATS_URL });
  const js = jetstream(nc);
  const subject = `${ns}.chat.${chat.id}`;
  const loadStart = performance.now();
  const window = [];
  for (let i = 0; i < total; i++) {
    const seq = i + 2;
    const body = `${words[i % words.length]} note ${i} ${words[(i * 7) % words.length]} with some filler text to look like a message`;
    const event = {
      type: 'MessageSent', version: 1, chatId: chat.id, seq,
      data: { messageId: crypto.randomUUID(), senderId: a.user.id, clientMsgId: `h${i}`, body, replyTo: null, attachmentIds: [] },
      meta: { eventId: crypto.randomUUID(), occurredAt: new Date().toISOString(), actorId: a.user.id, correlationId: 'bench', causationId: null },
    };
    window.push(js.publish(subject, JSON.stringify(event), { msgID: `bench:${chat.id}:${seq}` }));
    if (window.length >= 500) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
  const published = performance.now() - loadStart;
  const db = new pg.Client({ connectionString: env.DATABASE_URL });
  await db.connect();
  for (;;) {
    const n = (await db.query('SELECT count(*)::int AS n FROM messages.messages WHERE chat_id = $1', [chat.id])).rows[0].n;
    if (n >= total) break;
    await sleep(250);
  }
  const projected = performance.now() - loadStart;
  await db.query('ANALYZE messages.messages');
  await db.end();

  const time = async (url) => {
    const samples = [];
    for (let i = 0; i < requests; i++) {
      const t = performance.now();
      const r = await api('GET', typeof url === 'function' ? url(i) : url, a.accessToken);
      if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
      samples.push(performance.now() - t);
    }
    samples.sort((x, y) => x - y);
    return { median: percentile(samples, 50), p99: percentile(samples, 99) };
  };
  const deep = (await api('GET', `/api/v1/chats/${chat.id}/messages?limit=50`, a.accessToken)).body;
  let cursor = deep.nextCursor;
  for (let i = 0; i < 100 && cursor; i++) cursor = (await api('GET', `/api/v1/chats/${chat.id}/messages?limit=50&before=${cursor}`, a.accessToken)).body.nextCursor;
  const results = {
    messages: total,
    publishSeconds: +(published / 1000).toFixed(1),
    projectedSeconds: +(projected / 1000).toFixed(1),
    historyFirstPage: await time(`/api/v1/chats/${chat.id}/messages?limit=50`),
    historyDeepPage: await time(`/api/v1/chats/${chat.id}/messages?limit=50&before=${cursor}`),
    searchCommonWord: await time(`/api/v1/search?q=deploy&chatId=${chat.id}`),
    searchRareWord: await time((i) => `/api/v1/search?q=${encodeURIComponent(`note ${(i * 997) % total}`)}&chatId=${chat.id}`),
    searchRussian: await time(`/api/v1/search?q=${encodeURIComponent('сообщения')}&chatId=${chat.id}`),
  };
  const fmt = (r) => `${r.median.toFixed(1)} ms (p99 ${r.p99.toFixed(1)} ms)`;
  console.log(`\nHistory and search on one chat of ${total.toLocaleString('en')} messages (${os.cpus()[0]?.model}, ${os.cpus().length} cores), ${requests} requests each:\n`);
  console.log('| measure | median (p99) |\n| --- | --- |');
  console.log(`| history, newest page of 50 | ${fmt(results.historyFirstPage)} |`);
  console.log(`| history, page of 50 at 5,000 back | ${fmt(results.historyDeepPage)} |`);
  console.log(`| search "deploy" (1 message in ${words.length} matches) | ${fmt(results.searchCommonWord)} |`);
  console.log(`| search "note <n>" (rare) | ${fmt(results.searchRareWord)} |`);
  console.log(`| search "сообщения" (Russian stemming) | ${fmt(results.searchRussian)} |`);
  console.log(`\nloaded in ${results.publishSeconds} s, projected by ${results.projectedSeconds} s (${Math.round(total / results.projectedSeconds).toLocaleString('en')} events/s end to end)`);
  console.log(JSON.stringify(results));
} finally {
  await services.stopAll();
  await nc?.close();
  await dropScratch({ natsUrl: env.NATS_URL, databases: [dbName], namespaces: [ns] });
}
