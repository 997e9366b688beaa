#!/usr/bin/env node
// `npm run bench`: the end-to-end load benchmark (issue 9). Starts users, messages and two
// gateways on a fresh database and namespace, registers users and creates chats through the API,
// drives real WebSockets from worker threads (warm-up, a step load to find the knee, a soak at 70 %
// of it, an idle phase holding many connections), checks that every acknowledged message reached
// every recipient exactly once, runs the same sockets and frames against a bare uWebSockets.js
// fan-out (the ceiling), and writes bench/results/<time>.json and .md. docs/performance.md
// explains every figure.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineFacts, openFilesLimit, pidsNamed } from './lib/proc.mjs';
import { readOptions, USAGE } from './lib/options.mjs';
import { cpuDelta, cpuSnapshot, runIdlePhase, runLoadPhase, verifyDelivery } from './lib/phases.mjs';
import { BacklogMonitor, QueryableSampler } from './lib/projection.mjs';
import { renderMarkdown, evaluateTargets } from './lib/report.mjs';
import { createChats, planChats, registerUsers, waitForMemberships } from './lib/setup.mjs';
import { System, sleep } from './lib/system.mjs';
import { WorkerPool } from './lib/workers.mjs';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const log = (...args) => console.log(...args);
const round = (v, d = 1) => Math.round(v * 10 ** d) / 10 ** d;

async function main() {
  const argv = process.argv.slice(2);
  const opts = readOptions(argv);
  if (opts.help) {
    log(USAGE);
    return 0;
  }
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-') + (opts.quick ? '-quick' : '');
  const outDir = opts.out ? path.resolve(opts.out) : path.join(root, 'bench', 'results');
  const results = {
    startedAt: startedAt.toISOString(),
    command: `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
    options: opts,
    machine: machineFacts(root),
    notes: [],
  };
  const system = new System({
    root,
    natsUrl: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
    adminDatabaseUrl: process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: opts.redis ? (process.env.REDIS_URL ?? 'redis://127.0.0.1:6379') : null,
    log,
    cpuProfDir: opts.cpuProf ? path.join(outDir, `prof-${stamp}`) : null,
    serviceEnv: opts.serviceEnv,
  });
  const holders = new Set();
  const membersFile = path.join(os.tmpdir(), `parley-${system.namespace}-members.json`);
  let pool;
  let sampler;
  let backlog;
  let cleanupPromise;
  const cleanup = () =>
    (cleanupPromise ??= (async () => {
      for (const child of holders) child.kill('SIGKILL');
      await pool?.terminate().catch(() => {});
      await sampler?.stop().catch(() => {});
      await backlog?.stop().catch(() => {});
      rmSync(membersFile, { force: true });
      return system.cleanup();
    })());
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      log(`\nbench: ${signal}: stopping the services and removing the bench database and streams`);
      cleanup().finally(() => process.exit(130));
    });
  }

  let exitCode = 0;
  try {
    log(`bench: namespace ${system.namespace}, database ${system.dbName}; ${results.machine.cores} × ${results.machine.cpuModel}, load average ${results.machine.loadAverageAtStart.join(' ')}`);
    await system.startParley();
    results.machine.natsServer = await system.natsServerVersion();
    const baseUrls = system.gateways.map((g) => `http://127.0.0.1:${g.port}`);

    // ---- population ----
    let t = Date.now();
    let lastLog = 0;
    const users = await registerUsers({
      baseUrls,
      count: opts.users,
      concurrency: opts.registerConcurrency,
      runId: system.id,
      onProgress: (n) => {
        if (Date.now() - lastLog > 5000) {
          lastLog = Date.now();
          log(`  registered ${n}/${opts.users}`);
        }
      },
    });
    const registrationSeconds = (Date.now() - t) / 1000;
    log(`bench: ${users.length} users registered in ${round(registrationSeconds)} s`);
    t = Date.now();
    const plan = planChats({ users: users.length, count: opts.chats, directShare: opts.directShare, smallShare: opts.smallGroupShare, smallSize: opts.smallGroupSize, largeSize: opts.largeGroupSize, profile: opts.profile });
    const chats = await createChats({ baseUrls, users, plan, concurrency: opts.registerConcurrency });
    await waitForMemberships(system.databaseUrl, chats);
    const chatSeconds = (Date.now() - t) / 1000;
    const kinds = { direct: 0, small: 0, large: 0 };
    for (const c of chats) kinds[c.type === 'direct' ? 'direct' : c.members.length <= (opts.smallGroupSize + opts.largeGroupSize) / 2 ? 'small' : 'large'] += 1;
    const membersPerChat = chats.reduce((n, c) => n + c.members.length, 0) / chats.length;
    const gatewayOf = (i) => (i >> 1) & 1;
    let crossShare = 0;
    for (const c of chats) {
      // Averaged over senders: the share of the other members that sit on the other gateway.
      const onA = c.members.filter((m) => gatewayOf(m) === 0).length;
      const onB = c.members.length - onA;
      crossShare += (2 * onA * onB) / (c.members.length * (c.members.length - 1));
    }
    results.setup = {
      users: users.length,
      registrationSeconds: round(registrationSeconds),
      registrationsPerSecond: round(users.length / registrationSeconds),
      chats: chats.length,
      chatKinds: kinds,
      chatCreationSeconds: round(chatSeconds),
      membersPerChat: round(membersPerChat, 2),
      // A message goes to a chat picked uniformly, so this is the mean of the chat sizes.
      deliveriesPerMessage: round(membersPerChat, 2),
      recipientsOnOtherGateway: round(crossShare / chats.length, 3),
      loadConnections: users.length,
    };
    log(`bench: ${chats.length} chats (${kinds.direct} direct, ${kinds.small} small groups, ${kinds.large} large) in ${round(chatSeconds)} s; ${round(membersPerChat, 2)} deliveries per message`);

    // ---- load generator ----
    sampler = new QueryableSampler(system.databaseUrl);
    await sampler.start();
    backlog = new BacklogMonitor(system.natsUrl, `${system.namespace}_chats`);
    await backlog.start();
    pool = new WorkerPool({ root, count: opts.workers, onSamples: (items) => sampler?.add(items) });
    const world = { chats: chats.map((c) => ({ id: c.id, members: c.members, ...(c.senders ? { senders: c.senders } : {}) })) };
    const shares = await pool.all('world', (w) => ({ ...world, ownClients: users.filter((u) => u.index % opts.workers === w).map((u) => ({ userIndex: u.index, userId: u.id })) }));
    await pool.all('configure', { sampleFraction: opts.sampleFraction, readRatio: opts.readRatio });
    const parleyUrls = users.map((u) => ({ url: `ws://127.0.0.1:${system.gateways[gatewayOf(u.index)].port}/ws?token=${encodeURIComponent(u.token)}` }));
    const parleyWatch = async () => ({
      gatewayA: [system.processes.gatewayA],
      gatewayB: [system.processes.gatewayB],
      messages: [system.processes.messages],
      users: [system.processes.users],
      nats: pidsNamed('nats-server'),
      postgres: await system.databaseBackendPids().catch(() => []),
      ...(system.redisUrl ? { redis: pidsNamed('redis-server') } : {}),
      generator: [process.pid],
    });
    // Every load socket is its user's first: each user comes online, as after a gateway restart.
    const cpuBeforeConnect = await cpuSnapshot(parleyWatch);
    t = Date.now();
    await connectOrThrow(pool, parleyUrls, opts);
    const connectedAt = Date.now();
    results.setup.loadConnectSeconds = round((connectedAt - t) / 1000);
    results.setup.loadConnectCpuSeconds = cpuDelta(cpuBeforeConnect, await cpuSnapshot(parleyWatch));
    log(`bench: ${users.length} load connections open in ${results.setup.loadConnectSeconds} s (${shares.map((s) => s.clients).join(' + ')} per worker); CPU-s ${JSON.stringify(results.setup.loadConnectCpuSeconds)}`);
    const ctx = { pool, opts, log, watch: parleyWatch, backlog, sampler, nextPhase: 1 };
    // Writes to the presence bucket while the users stay online: the heartbeats (one per gateway per
    // beat since 2026-12-07; one per user before).
    const presenceStream = `KV_${system.namespace}_presence`;
    const presenceBefore = { seq: await backlog.lastSeq(presenceStream), at: Date.now() };
    results.parley = await loadPhases(ctx, opts.steps, opts.stepSeconds, 'Parley', { connectedAt });
    results.parley.presenceWritesPerSecond = round(((await backlog.lastSeq(presenceStream)) - presenceBefore.seq) / ((Date.now() - presenceBefore.at) / 1000));
    log(`bench: ${results.parley.presenceWritesPerSecond} writes a second to the presence bucket during the load phases`);
    results.parley.counters = await pool.all('counters');
    results.parley.appends = await gatewayAppends(system.gateways);

    log('bench: verifying delivery (every acked message, every recipient socket, exactly once)');
    results.parley.verification = await verifyDelivery(pool, chats.length);
    logVerification(results.parley.verification);

    // ---- idle: many connections (several per user: connections, not users, are what memory needs) ----
    if (opts.idleConnections > 0) {
      const connections = capIdle(opts.idleConnections, 2, users.length, results, 'Parley');
      results.parley.idle = await runIdlePhase({
        root,
        opts,
        log,
        holders,
        target: 'Parley',
        connections,
        seconds: opts.idleSeconds,
        // By default each idle connection goes to its user's home gateway (where the user already
        // has a socket), so the phase measures what a connection costs, not the presence work of a
        // user coming online (--idle-any-gateway sends them anywhere: see docs/performance.md).
        urlFor: (j) => {
          const u = users[j % users.length];
          const gateway = opts.idleAnyGateway ? j % 2 : gatewayOf(u.index);
          return { url: `ws://127.0.0.1:${system.gateways[gateway].port}/ws?token=${encodeURIComponent(u.token)}` };
        },
        servers: system.gateways.map((g) => ({ label: g.label, pid: system.processes[g.label], inspectPort: g.inspectPort })),
        // Set-ups take turns (WS_SETUP_CONCURRENCY): the hold starts when no socket waits for one.
        settled: async () => {
          const deadline = Date.now() + 180_000;
          for (;;) {
            const waiting = (await gatewayMetrics(system.gateways)).map((text) => metricValue(text, 'gateway_socket_setups_waiting'));
            if (waiting.every((n) => n === 0) || Date.now() > deadline) return;
            // Not more often: a /metrics page counts the process's open files by listing
            // /proc/self/fd, about 12 ms with 10,000 sockets, a fifth of a gateway's CPU at 4 a second.
            await sleep(1000);
          }
        },
        countOpen: async () => (await gatewayMetrics(system.gateways)).reduce((n, text) => n + metricValue(text, 'websocket_connections_total'), 0),
      });
      log(`bench: Parley idle: ${results.parley.idle.bytesPerConnection} bytes per connection (gateways' RSS growth / connections open), live JS heap ${results.parley.idle.heapBytesPerConnection}`);
    }
    await pool.all('closeAll');
    // Let the gateways finish the presence updates of the closed sockets before they stop.
    await sleep(1000);
    await sampler.stop();
    sampler = null;
    await backlog.stop();
    backlog = null;
    await system.stopParley();

    // ---- ceiling: the same sockets and frames through bare uWebSockets.js ----
    if (opts.ceiling) {
      const memberships = {};
      for (const c of chats) for (const m of c.members) (memberships[users[m].id] ??= []).push(c.id);
      writeFileSync(membersFile, JSON.stringify(memberships));
      const ports = await system.startCeiling(membersFile);
      const ceilingPid = system.processes.ceiling;
      await pool.all('reset');
      await pool.all('configure', { sampleFraction: 0, readRatio: opts.readRatio });
      const ceilingUrls = users.map((u) => ({ url: `ws://127.0.0.1:${ports[gatewayOf(u.index)].port}/ws?u=${u.id}` }));
      await connectOrThrow(pool, ceilingUrls, opts);
      const cctx = { pool, opts, log, watch: async () => ({ ceiling: [ceilingPid], generator: [process.pid] }), backlog: null, sampler: null, nextPhase: 1000 };
      results.ceiling = await loadPhases(cctx, opts.ceilingSteps, opts.ceilingStepSeconds, 'ceiling', { soak: false, connectedAt: 0 });
      results.ceiling.counters = await pool.all('counters');
      results.ceiling.verification = await verifyDelivery(pool, chats.length);
      logVerification(results.ceiling.verification, 'ceiling');
      if (opts.ceilingIdleConnections > 0) {
        const connections = capIdle(opts.ceilingIdleConnections, 1, users.length, results, 'ceiling');
        results.ceiling.idle = await runIdlePhase({
          root,
          opts,
          log,
          holders,
          target: 'ceiling',
          connections,
          seconds: Math.min(opts.idleSeconds, 5),
          urlFor: (j) => {
            const u = users[j % users.length];
            return { url: `ws://127.0.0.1:${ports[opts.idleAnyGateway ? j % 2 : gatewayOf(u.index)].port}/ws?u=${u.id}` };
          },
          servers: [{ label: 'ceiling', pid: ceilingPid, inspectPort: ports[0].inspectPort }],
        });
        log(`bench: ceiling idle: ${results.ceiling.idle.bytesPerConnection} bytes per connection, live JS heap ${results.ceiling.idle.heapBytesPerConnection}`);
      }
      await pool.all('closeAll');
      await system.stopCeiling();
    }
    if (!results.parley.verification.ok) {
      exitCode = 1;
      results.notes.push('FAILED: an acknowledged message was lost, duplicated or mismatched (see parley.verification).');
    }
    if (results.ceiling && !results.ceiling.verification.ok) {
      exitCode = 1;
      results.notes.push('FAILED: the ceiling run lost or duplicated frames: the load generator itself is suspect.');
    }
  } catch (error) {
    exitCode = 2;
    results.error = String(error?.stack ?? error);
    log(`bench: FAILED: ${results.error}`);
  } finally {
    const problems = await cleanup();
    if (problems?.length) {
      results.cleanupProblems = problems;
      for (const p of problems) log(`bench: cleanup: ${p}`);
    }
  }

  results.finishedAt = new Date().toISOString();
  results.durationSeconds = round((Date.parse(results.finishedAt) - startedAt.getTime()) / 1000);
  results.machine.loadAverageAtEnd = os.loadavg().map((v) => round(v, 2));
  results.targets = results.parley?.phases ? evaluateTargets(results) : [];
  results.exitCode = exitCode;
  const markdown = renderMarkdown(results);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, `${stamp}.json`), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(outDir, `${stamp}.md`), markdown);
  log(`\n${markdown}`);
  log(`bench: results in ${path.relative(process.cwd(), path.join(outDir, `${stamp}.json`))} and .md (${results.durationSeconds} s)`);
  return exitCode;
}

/**
 * Each server process may hold only as many sockets as its open-files limit (inherited from this
 * process: `ulimit -n`), less the load connections and a margin for its other files.
 */
function capIdle(requested, serverProcesses, loadConnections, results, label) {
  const { soft } = openFilesLimit();
  const perProcess = soft - Math.ceil(loadConnections / serverProcesses) - 500;
  const cap = Math.max(0, perProcess * serverProcesses);
  if (requested <= cap) return requested;
  results.notes.push(`${label} idle phase: ${requested} connections requested, ${cap} opened: the open-files limit is ${soft} per process (raise \`ulimit -n\` before \`npm run bench\` for more).`);
  return cap;
}

async function connectOrThrow(pool, urls, opts) {
  const outcome = await pool.all('connect', { urls, concurrency: Math.max(5, Math.floor(opts.connectConcurrency / opts.workers)) });
  const failed = outcome.reduce((n, o) => n + o.failed, 0);
  if (failed > 0) throw new Error(`${failed} load connections failed: ${JSON.stringify(outcome.map((o) => o.errors))}`);
}

/** Warm-up, the step load up to the knee, then the soak at a fraction of the knee. */
async function loadPhases(ctx, steps, stepSeconds, label, { soak = true, connectedAt = Date.now() } = {}) {
  const { opts, log } = ctx;
  const phases = [];
  const warmup = Math.max(opts.warmupSeconds, Math.ceil(opts.settleSeconds - (Date.now() - connectedAt) / 1000));
  log(`bench: ${label}: warm-up ${opts.warmupRate} msg/s for ${warmup} s`);
  phases.push(await runLoadPhase(ctx, { name: 'warm-up', kind: 'warmup', rate: opts.warmupRate, seconds: warmup }));
  let knee = null;
  let afterKnee = 0;
  for (const rate of steps) {
    log(`bench: ${label}: step ${rate} msg/s for ${stepSeconds} s`);
    const r = await runLoadPhase(ctx, { name: `step ${rate}/s`, kind: 'step', rate, seconds: stepSeconds });
    phases.push(r);
    log(`  → accepted ${r.acceptedPerSecond}/s, delivered ${r.deliveredFramesPerSecond} frames/s, ack p99 ${r.sendToAckMs.p99} ms, deliver p99 ${r.sendToDeliverMs.p99} ms` + (r.sendToQueryableMs ? `, queryable p99 ${r.sendToQueryableMs.p99} ms` : '') + (r.kneeReasons.length ? `  KNEE: ${r.kneeReasons.join('; ')}` : ''));
    if (!knee && r.kneeReasons.length > 0) knee = { rate, reasons: r.kneeReasons };
    if (knee && afterKnee++ >= opts.stepsAfterKnee) break;
  }
  const sustained = phases.filter((p) => p.kind === 'step' && p.kneeReasons.length === 0).map((p) => p.offeredRate);
  const highestHeld = sustained.length ? Math.max(...sustained) : null;
  if (soak && opts.soakSeconds > 0) {
    const base = knee ? knee.rate : Math.max(...steps);
    const rate = Math.max(1, Math.round(base * opts.soakFraction));
    log(`bench: ${label}: soak ${rate} msg/s (${opts.soakFraction} × ${knee ? 'the knee' : 'the highest step, no knee found'}) for ${opts.soakSeconds} s`);
    const r = await runLoadPhase(ctx, { name: `soak ${rate}/s`, kind: 'soak', rate, seconds: opts.soakSeconds });
    log(`  → accepted ${r.acceptedPerSecond}/s, deliver p99 ${r.sendToDeliverMs.p99} ms${r.kneeReasons.length ? `  NOT SUSTAINED: ${r.kneeReasons.join('; ')}` : ''}`);
    phases.push(r);
  }
  return { phases, knee, highestStepHeld: highestHeld };
}

function logVerification(v, label = 'Parley') {
  log(
    `bench: ${label}: ${v.acked} acked messages, ${v.recipientChecks} recipient checks: missing ${v.missing}, duplicates ${v.duplicates}, wrong message ${v.wrongMessage}, seq conflicts ${v.seqConflicts}, delivered-but-unacked ${v.unackedDeliveries} → ${v.ok ? 'OK' : 'FAILED'}`,
  );
  if (!v.ok) log(`  examples: ${JSON.stringify(v.examples)}`);
}

main().then(
  async (code) => {
    // Let stdout drain before exiting (worker threads and sockets are closed by now).
    await sleep(50);
    process.exit(code);
  },
  (error) => {
    log(`bench: ${error?.stack ?? error}`);
    process.exit(2);
  },
);

/**
 * The gateways' JetStream appends so far, by outcome (`bus_publishes_total`): "conflict" is a send
 * whose expected-last-sequence check failed because another gateway appended to the chat first
 * (it is retried on the new head), the cost the sequencer's live heads keep down.
 */
async function gatewayAppends(gateways) {
  const totals = {};
  for (const text of await gatewayMetrics(gateways)) {
    for (const m of text.matchAll(/^bus_publishes_total\{([^}]*)\}\s+([\d.e+]+)/gm)) {
      const outcome = /outcome="([^"]+)"/.exec(m[1])?.[1] ?? 'unknown';
      totals[outcome] = (totals[outcome] ?? 0) + Number(m[2]);
    }
  }
  return totals;
}

/** An unlabelled metric's value on a /metrics page (its `service` label aside), 0 when absent. */
function metricValue(text, name) {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([\\d.e+]+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Each gateway's /metrics page (empty when it does not answer). */
function gatewayMetrics(gateways) {
  return Promise.all(gateways.map((g) => fetch(`http://127.0.0.1:${g.metricsPort}/metrics`).then((r) => r.text()).catch(() => '')));
}
