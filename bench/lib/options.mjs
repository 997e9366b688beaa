// Command-line flags. Every number of the workload is a flag; `--quick` switches the defaults to a
// CI-sized profile (about a minute) and explicit flags still win over it.
import { parseArgs } from 'node:util';

const FULL = {
  users: 2000,
  chats: 0, // 0: as many chats as users
  'direct-share': 0.7,
  'small-group-share': 0.25,
  'small-group-size': 8,
  'large-group-size': 50,
  workers: 2,
  'body-bytes': 120,
  'typing-ratio': 0,
  'read-ratio': 0,
  'warmup-rate': 500,
  'warmup-seconds': 10,
  // The gateway checks each send of a socket younger than WS_RESEND_CHECK_MS (10 s) against the
  // projection (a resend after a reconnect); the warm-up lasts at least this long after connecting
  // so that the steps measure established connections.
  'settle-seconds': 10,
  steps: '1000,2000,5000,10000,15000,20000',
  'step-seconds': 15,
  'p99-limit-ms': 50,
  'steps-after-knee': 0,
  'soak-fraction': 0.7,
  'soak-seconds': 60,
  'idle-connections': 20000,
  'idle-seconds': 15,
  'idle-connect-rate': 0, // connections/s while opening the idle phase; 0: as fast as they go
  'ceiling-steps': '1000,2000,5000,10000,20000,40000',
  'ceiling-step-seconds': 5,
  'ceiling-idle-connections': -1, // -1: the same as --idle-connections
  'sample-fraction': 0.02,
  'drain-seconds': 30,
  'register-concurrency': 16,
  'connect-concurrency': 100,
  'source-ips': 0, // 0: as many as the idle phase needs (10,000 connections per address and port)
};

const QUICK = {
  users: 200,
  'warmup-rate': 100,
  'warmup-seconds': 2,
  steps: '200,500',
  'step-seconds': 5,
  'soak-seconds': 5,
  'idle-connections': 2000,
  'idle-seconds': 3,
  'ceiling-steps': '500,1000,2000',
  'ceiling-step-seconds': 3,
  'sample-fraction': 0.1,
  'drain-seconds': 15,
};

const BOOLEANS = {
  quick: false,
  ceiling: true,
  redis: true,
  'cpu-prof': false,
  'idle-any-gateway': false,
  help: false,
};

export const USAGE = `npm run bench -- [flags]

  --quick                      CI profile: ${QUICK.users} users, steps ${QUICK.steps} msg/s, ${QUICK['idle-connections']} idle connections (< 2 min)
  --profile default|pairs      the chat mix below (default), or pairs: users in disjoint pairs, one
                               direct chat each, one sender per pair (the 1:1 workload of other servers' figures)
  --users N                    users registered through the API (${FULL.users})
  --chats N                    chats (0 = as many as users)
  --direct-share F / --small-group-share F   chat mix (0.7 / 0.25; the rest are large groups)
  --small-group-size N / --large-group-size N   about 8 / about 50 members (±25 %)
  --workers N                  load-generator worker threads (${FULL.workers})
  --body-bytes N               message body size (${FULL['body-bytes']})
  --typing-ratio F             typing frames per message (0)
  --read-ratio F               read receipts per delivered message (0)
  --warmup-rate R --warmup-seconds S
  --settle-seconds S           the warm-up lasts at least S s after the load connections open (10)
  --steps R1,R2,...            step load in messages/s (${FULL.steps})
  --step-seconds S             length of each step (${FULL['step-seconds']})
  --p99-limit-ms MS            the knee: first step whose send-to-deliver p99 passes this (${FULL['p99-limit-ms']})
  --steps-after-knee N         steps still run after the knee (0)
  --soak-fraction F --soak-seconds S   soak at F × the knee (0.7, ${FULL['soak-seconds']} s)
  --idle-connections N --idle-seconds S   idle phase (${FULL['idle-connections']} connections, ${FULL['idle-seconds']} s)
  --idle-any-gateway           idle connections on either gateway, not their user's home gateway
  --idle-connect-rate N        pace the idle phase's connects (per second; 0 = unpaced, a reconnect storm)
  --ceiling-steps R1,... --ceiling-step-seconds S --ceiling-idle-connections N   bare uWebSockets.js run
  --no-ceiling                 skip the ceiling run
  --sample-fraction F          acked messages polled in Postgres for send-to-queryable lag (${FULL['sample-fraction']})
  --drain-seconds S            longest wait after a step for acks, deliveries and projection (${FULL['drain-seconds']})
  --register-concurrency N --connect-concurrency N
  --source-ips N               spread idle connections over 127.0.0.1..N (0 = automatic)
  --no-redis                   run the services without Redis
  --cpu-prof                   write V8 CPU profiles of both gateways and messages to bench/results/prof-<time>/
  --service-env KEY=VALUE      extra environment for every service (repeatable), e.g. WS_RESEND_CHECK_SENDS=0
  --out DIR                    where results go (bench/results)
`;

export function readOptions(argv = process.argv.slice(2)) {
  const options = { out: { type: 'string' }, profile: { type: 'string' }, 'service-env': { type: 'string', multiple: true } };
  for (const key of Object.keys(FULL)) options[key] = { type: 'string' };
  for (const key of Object.keys(BOOLEANS)) {
    options[key] = { type: 'boolean' };
    options[`no-${key}`] = { type: 'boolean' };
  }
  const { values } = parseArgs({ args: argv, options, strict: true });
  const quick = Boolean(values.quick);
  const merged = { ...FULL, ...(quick ? QUICK : {}) };
  const serviceEnv = {};
  for (const pair of values['service-env'] ?? []) {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--service-env wants KEY=VALUE, got ${pair}`);
    serviceEnv[pair.slice(0, at)] = pair.slice(at + 1);
  }
  const profile = values.profile ?? 'default';
  if (profile !== 'default' && profile !== 'pairs') throw new Error(`--profile is default or pairs, got ${profile}`);
  const result = { quick, out: values.out ?? null, profile, serviceEnv };
  for (const [key, fallback] of Object.entries(merged)) {
    const raw = values[key];
    if (typeof fallback === 'string') {
      result[key] = (raw ?? fallback).split(',').map((v) => Number(v.trim())).filter((v) => Number.isFinite(v) && v > 0);
    } else {
      const n = raw === undefined ? fallback : Number(raw);
      if (!Number.isFinite(n)) throw new Error(`--${key} must be a number, got ${raw}`);
      result[key] = n;
    }
  }
  for (const [key, fallback] of Object.entries(BOOLEANS)) {
    result[key] = values[`no-${key}`] ? false : (values[key] ?? fallback);
  }
  if (result.chats === 0) result.chats = result.users;
  if (result['ceiling-idle-connections'] < 0) result['ceiling-idle-connections'] = result['idle-connections'];
  if (result.users < 2) throw new Error('--users must be at least 2');
  if (result['direct-share'] + result['small-group-share'] > 1) throw new Error('--direct-share + --small-group-share must be at most 1');
  // camelCase for the code.
  const camel = {};
  for (const [key, value] of Object.entries(result)) camel[key.replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = value;
  return camel;
}
