// One load phase (warm-up, a step, the soak) and the idle phase, with everything they measure.
import { fork } from 'node:child_process';
import path from 'node:path';
import { memoryAfterGc } from './heap.mjs';
import { Histogram } from './histogram.mjs';
import { cpuSeconds, openFilesLimit, rssBytes } from './proc.mjs';
import { sleep } from './system.mjs';

const now = () => Number(process.hrtime.bigint()) / 1e6;
const round = (v, digits = 2) => (v === null || v === undefined || !Number.isFinite(v) ? null : Math.round(v * 10 ** digits) / 10 ** digits);

function addCounts(into, from) {
  for (const [k, v] of Object.entries(from ?? {})) into[k] = (into[k] ?? 0) + v;
  return into;
}

/** CPU seconds of every watched process, by label ({label: {pid: seconds}}). */
export async function cpuSnapshot(watch) {
  const snapshot = {};
  for (const [label, pids] of Object.entries(await watch())) {
    snapshot[label] = {};
    for (const pid of pids) {
      const s = cpuSeconds(pid);
      if (s !== null) snapshot[label][pid] = s;
    }
  }
  return snapshot;
}

export function cpuDelta(before, after) {
  const delta = {};
  for (const [label, pids] of Object.entries(after)) {
    let sum = 0;
    // A process born during the phase (a new Postgres backend) counts from zero.
    for (const [pid, s] of Object.entries(pids)) sum += s - (before[label]?.[pid] ?? 0);
    delta[label] = round(sum, 3);
  }
  return delta;
}

/**
 * Runs one open-loop load phase and waits (bounded) for its acks, deliveries and projection to
 * finish, then collects the workers' figures. `ctx`: { pool, opts, watch, backlog, sampler, log, nextPhase }.
 */
export async function runLoadPhase(ctx, { name, kind, rate, seconds }) {
  const { pool, opts, log } = ctx;
  const phase = ctx.nextPhase++;
  const cpuBefore = await cpuSnapshot(ctx.watch);
  const durationMs = seconds * 1000;
  const startAt = now() + 200;
  const backlogSamples = [];
  let running = true;
  const sum = (parts, key) => parts.reduce((n, p) => n + p[key], 0);
  const monitor = (async () => {
    while (running) {
      await sleep(1000);
      if (!running) break;
      const progress = await pool.all('progress', { phase });
      const backlog = ctx.backlog ? await ctx.backlog.read().catch(() => null) : null;
      backlogSamples.push({ at: round((now() - startAt) / 1000, 1), backlog: backlog?.max ?? null });
      log(
        `  ${name}: ${Math.round((now() - startAt) / 1000)} s  sent ${sum(progress, 'sent')}  acked ${sum(progress, 'acked')}  in flight ${sum(progress, 'outstanding')}  delivered ${sum(progress, 'delivered')}/${sum(progress, 'expected')}  errors ${sum(progress, 'errors')}` +
          (backlog ? `  projection backlog ${backlog.max}` : ''),
      );
    }
  })();
  await pool.all('run', { phase, rate, startAt, durationMs, bodyBytes: opts.bodyBytes, typingRatio: opts.typingRatio });
  running = false;
  await monitor;
  const backlogAtEnd = ctx.backlog ? ((await ctx.backlog.read().catch(() => null))?.max ?? null) : null;

  // Drain: every ack back, every expected delivery in, the projection caught up, the samples found.
  const drainStart = now();
  let drained = false;
  let last;
  while (now() - drainStart < opts.drainSeconds * 1000) {
    const progress = await pool.all('progress', { phase });
    const backlog = ctx.backlog ? ((await ctx.backlog.read().catch(() => null))?.max ?? 0) : 0;
    const pendingSamples = ctx.sampler ? ctx.sampler.pendingOf(phase) : 0;
    last = { outstanding: sum(progress, 'outstanding'), delivered: sum(progress, 'delivered'), expected: sum(progress, 'expected'), backlog, pendingSamples };
    if (last.outstanding === 0 && last.delivered >= last.expected && backlog === 0 && pendingSamples === 0) {
      drained = true;
      break;
    }
    await sleep(100);
  }
  const drainSeconds = (now() - drainStart) / 1000;
  const cpu = cpuDelta(cpuBefore, await cpuSnapshot(ctx.watch));
  const parts = await pool.all('stats', { phase });

  const ack = new Histogram();
  const deliver = new Histogram();
  const lag = new Histogram();
  const sendErrors = {};
  let scheduled = 0;
  let sent = 0;
  let notSent = 0;
  let acked = 0;
  let expected = 0;
  let delivered = 0;
  let windowAcks = 0;
  let windowDelivered = 0;
  let typingSent = 0;
  let readSent = 0;
  let retries = 0;
  for (const p of parts) {
    retries += p.retries;
    ack.add(p.ack);
    deliver.add(p.deliver);
    lag.add(p.lag);
    addCounts(sendErrors, p.sendErrors);
    scheduled += p.scheduled;
    sent += p.sent;
    notSent += p.notSent;
    acked += p.acked;
    expected += p.expected;
    delivered += p.delivered;
    windowAcks += p.window.acks;
    windowDelivered += p.window.delivered;
    typingSent += p.typingSent;
    readSent += p.readSent;
  }
  const queryable = ctx.sampler ? ctx.sampler.phase(phase) : null;
  const perThousand = {};
  for (const [label, s] of Object.entries(cpu)) perThousand[label] = acked > 0 ? round((s / acked) * 1000, 4) : null;
  const result = {
    name,
    kind,
    phase,
    offeredRate: rate,
    seconds,
    scheduled,
    sent,
    notSent,
    acked,
    sendErrors,
    retries,
    acceptedPerSecond: round(windowAcks / seconds, 0),
    deliveredFramesPerSecond: round(windowDelivered / seconds, 0),
    expectedDeliveries: expected,
    delivered,
    typingSent,
    readSent,
    sendToAckMs: ack.summary(),
    sendToDeliverMs: deliver.summary(),
    sendToQueryableMs: queryable ? { ...queryable.lag.summary(), notFound: queryable.lost } : null,
    projectionBacklog: { samples: backlogSamples, atEndOfLoad: backlogAtEnd },
    drain: { seconds: round(drainSeconds, 1), complete: drained, left: drained ? null : last },
    cpuSeconds: cpu,
    cpuSecondsPer1000Messages: perThousand,
    generator: {
      cpuCores: round(cpu.generator / (seconds + drainSeconds), 2),
      eventLoopUtilization: parts.map((p) => round(p.elu, 2)),
      scheduleLagMs: lag.summary(),
    },
  };
  result.kneeReasons = judge(result, opts);
  // Not a knee reason, but a warning on the figures: when the generator itself left its sends
  // late, the machine (not only the server) was saturated, e.g. by other work.
  const lagP99 = result.generator.scheduleLagMs.p99;
  result.warnings = lagP99 !== null && lagP99 > opts.p99LimitMs / 2 ? [`the generator sent late (schedule lag p99 ${lagP99} ms): the machine was saturated`] : [];
  return result;
}

/** Why a step counts as past the knee (empty: it held). */
export function judge(r, opts) {
  const reasons = [];
  const p99 = r.sendToDeliverMs.p99;
  if (p99 !== null && p99 > opts.p99LimitMs) reasons.push(`send-to-deliver p99 ${p99} ms > ${opts.p99LimitMs} ms`);
  const errors = Object.values(r.sendErrors).reduce((a, b) => a + b, 0) + r.notSent;
  if (errors > 0) reasons.push(`${errors} send errors (${JSON.stringify({ ...r.sendErrors, ...(r.notSent ? { not_sent_socket_down: r.notSent } : {}) })})`);
  if (r.retries > 0) reasons.push(`${r.retries} sends answered "unavailable" and retried`);
  if (r.acceptedPerSecond < 0.9 * r.offeredRate) reasons.push(`accepted ${r.acceptedPerSecond}/s < 90 % of offered ${r.offeredRate}/s`);
  if (!r.drain.complete) reasons.push(`not drained within ${r.drain.seconds} s (${JSON.stringify(r.drain.left)})`);
  // Projection lag keeps growing: a backlog of more than half a second of messages at the end of
  // the load that is also larger than half-way through it.
  const samples = r.projectionBacklog.samples.filter((s) => s.backlog !== null);
  if (samples.length >= 2) {
    const end = r.projectionBacklog.atEndOfLoad ?? samples[samples.length - 1].backlog;
    const mid = samples[Math.floor(samples.length / 2)].backlog;
    if (end > Math.max(500, r.offeredRate * 0.5) && end > mid) reasons.push(`projection backlog growing (${mid} → ${end} events)`);
  }
  return reasons;
}

/**
 * The idle phase: `connections` more sockets, opened from helper processes, held for `seconds`.
 * Memory per idle connection = growth of the servers' RSS, each reading taken after a full
 * collection (memoryOf), / connections still open; the live JS heap likewise. `settled`
 * (optional) resolves once the servers have set the sockets up: the hold starts then, so memory
 * is read from sockets held, not from set-ups still waiting their turn.
 */
export async function runIdlePhase({ root, opts, log, holders, target, connections, seconds, urlFor, servers, countOpen, settled }) {
  const fd = openFilesLimit();
  const perHolder = Math.max(1000, Math.min(15_000, fd.soft - 1_000));
  const holderCount = Math.ceil(connections / perHolder);
  const sourceIps = opts.sourceIps || Math.max(1, Math.ceil(connections / servers.length / 10_000));
  const unique = [...new Map(servers.map((s) => [s.pid, s])).values()];
  const memoryBefore = await memoryOf(unique);
  const cpuBefore = Object.fromEntries(servers.map((s) => [s.label, cpuSeconds(s.pid)]));
  const started = now();
  const spawned = [];
  for (let h = 0; h < holderCount; h++) {
    const child = fork(path.join(root, 'bench', 'idle-holder.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, NODE_OPTIONS: '' } });
    holders.add(child);
    child.on('exit', () => holders.delete(child));
    spawned.push(child);
  }
  const reply = (child, type) =>
    new Promise((resolve, reject) => {
      const onMessage = (m) => {
        if (m.type !== type) return;
        child.off('message', onMessage);
        resolve(m);
      };
      child.on('message', onMessage);
      child.once('exit', (code) => reject(new Error(`idle holder exited (${code})`)));
    });
  await Promise.all(spawned.map((c) => reply(c, 'ready')));
  const outcomes = await Promise.all(
    spawned.map((child, h) => {
      const targets = [];
      for (let j = h; j < connections; j += holderCount) {
        const { url } = urlFor(j);
        targets.push({ url, localAddress: sourceIps > 1 ? `127.0.0.${1 + (j % sourceIps)}` : undefined });
      }
      const done = reply(child, 'opened');
      child.send({ cmd: 'open', targets, concurrency: Math.max(10, Math.floor(opts.connectConcurrency / holderCount)), rate: opts.idleConnectRate / holderCount });
      return done;
    }),
  );
  const connectSeconds = (now() - started) / 1000;
  const opened = outcomes.reduce((n, o) => n + o.opened + Object.values(o.closes).reduce((a, b) => a + b, 0), 0);
  const errors = outcomes.reduce((all, o) => addCounts(all, o.errors), {});
  const closedWhileOpening = outcomes.reduce((all, o) => addCounts(all, o.closes), {});
  const settledStarted = now();
  if (settled) await settled();
  const setupSeconds = (now() - settledStarted) / 1000;
  log(`  idle ${target}: ${opened} of ${connections} connections open in ${round(connectSeconds, 1)} s${Object.keys(closedWhileOpening).length ? ` (closed by the server meanwhile: ${JSON.stringify(closedWhileOpening)})` : ''}${settled ? `, set up ${round(setupSeconds, 1)} s later` : ''}; holding ${seconds} s`);
  const holdStart = Object.fromEntries(servers.map((s) => [s.label, cpuSeconds(s.pid)]));
  await sleep(seconds * 1000);
  const memoryAfter = await memoryOf(unique);
  const cpuAfter = Object.fromEntries(servers.map((s) => [s.label, cpuSeconds(s.pid)]));
  const counts = await Promise.all(spawned.map((c) => (c.send({ cmd: 'count' }), reply(c, 'count'))));
  const stillOpen = counts.reduce((n, m) => n + m.open, 0);
  const closedByServer = counts.reduce((all, m) => addCounts(all, m.closes), {});
  const serverCount = countOpen ? await countOpen() : null;
  for (const child of spawned) child.send({ cmd: 'close' });
  await Promise.all(spawned.map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve() : c.once('exit', resolve)))));
  // The servers notice the closes; give them a moment before the next phase.
  await sleep(1000);

  // Per connection still open when memory was read: the ones the server closed hold nothing.
  const perOpen = (key) => {
    const readings = unique.flatMap((s) => [memoryBefore[s.label][key], memoryAfter[s.label][key]]);
    if (stillOpen === 0 || readings.some((v) => typeof v !== 'number')) return null;
    const growth = unique.reduce((sum, s) => sum + memoryAfter[s.label][key] - memoryBefore[s.label][key], 0);
    return Math.round(growth / stillOpen);
  };
  const mib = (memory, key) => Object.fromEntries(Object.entries(memory).map(([k, v]) => [k, round(v[key] / 2 ** 20, 1)]));
  return {
    target,
    requested: connections,
    opened,
    failed: connections - opened,
    errors,
    closedByServer,
    stillOpenAfterHold: stillOpen,
    serverSideOpenCount: serverCount,
    holderProcesses: holderCount,
    sourceAddresses: sourceIps,
    connectSeconds: round(connectSeconds, 1),
    connectsPerSecond: round(opened / connectSeconds, 0),
    setupSecondsAfterConnects: settled ? round(setupSeconds, 1) : null,
    holdSeconds: seconds,
    // Both readings follow a full collection when the servers' inspectors answer (lib/heap.mjs).
    memoryAfterGc: unique.every((s) => memoryBefore[s.label].afterGc && memoryAfter[s.label].afterGc),
    rssBeforeMiB: mib(memoryBefore, 'rss'),
    rssAfterMiB: mib(memoryAfter, 'rss'),
    // The whole cost: the JS heap, uWebSockets.js's native share and the allocator's overhead.
    bytesPerConnection: perOpen('rss'),
    // The live JS objects alone (SocketData, its collections and promises, registry entries).
    heapBytesPerConnection: perOpen('heapUsed'),
    // What V8 holds for its heap (used or not) and native memory it knows of (Buffers).
    heapTotalBytesPerConnection: perOpen('heapTotal'),
    externalBytesPerConnection: perOpen('external'),
    cpuSecondsWhileConnecting: Object.fromEntries(servers.map((s) => [s.label, round(holdStart[s.label] - cpuBefore[s.label], 2)])),
    cpuSecondsWhileIdle: Object.fromEntries(servers.map((s) => [s.label, round(cpuAfter[s.label] - holdStart[s.label], 2)])),
  };
}

/**
 * Each server's memory after a full collection, through its inspector; RSS alone (noisier: it
 * holds whatever garbage is uncollected) for one that has no inspector.
 */
async function memoryOf(servers) {
  const readings = await Promise.all(
    servers.map(async (s) => {
      if (s.inspectPort) {
        try {
          return [s.label, { ...(await memoryAfterGc(s.inspectPort)), afterGc: true }];
        } catch {
          // Its inspector did not start (port taken): fall back to RSS below.
        }
      }
      return [s.label, { rss: rssBytes(s.pid), heapUsed: null, afterGc: false }];
    }),
  );
  return Object.fromEntries(readings);
}

/** Collects every worker's acks and checks every recipient socket against them. */
export async function verifyDelivery(pool, chatCount) {
  const parts = await pool.all('acks');
  const counts = new Int32Array(chatCount);
  for (const p of parts) for (let i = 0; i < p.chat.length; i++) counts[p.chat[i]] += 1;
  // One sortable number per ack: seq in the high bits, the message-id hash in the low 32.
  const keys = Array.from(counts, (n) => new Float64Array(n));
  const fill = new Int32Array(chatCount);
  let acked = 0;
  for (const p of parts) {
    for (let i = 0; i < p.chat.length; i++) {
      const c = p.chat[i];
      if (p.seq[i] >= 2 ** 21) throw new Error('seq beyond 2^21 in one chat: widen the verification keys');
      keys[c][fill[c]++] = p.seq[i] * 2 ** 32 + (p.hash[i] >>> 0);
      acked += 1;
    }
  }
  let seqConflicts = 0;
  const chatAcks = keys.map((k) => {
    k.sort();
    const seqs = new Int32Array(k.length);
    const hashes = new Int32Array(k.length);
    for (let i = 0; i < k.length; i++) {
      seqs[i] = Math.floor(k[i] / 2 ** 32);
      hashes[i] = k[i] % 2 ** 32 | 0;
      // Two acked messages with one seq in one chat: the gap-free seq promise is broken.
      if (i > 0 && seqs[i] === seqs[i - 1]) seqConflicts += 1;
    }
    return { seqs, hashes };
  });
  const results = await pool.all('verify', { chatAcks });
  const total = { acked, recipientChecks: 0, missing: 0, duplicates: 0, wrongMessage: 0, unackedDeliveries: 0, seqConflicts, examples: [] };
  for (const r of results) {
    total.recipientChecks += r.checked;
    total.missing += r.missing;
    total.duplicates += r.duplicates;
    total.wrongMessage += r.wrongMessage;
    total.unackedDeliveries += r.unackedDeliveries;
    total.examples.push(...r.examples);
  }
  total.examples = total.examples.slice(0, 10);
  total.ok = total.missing === 0 && total.duplicates === 0 && total.wrongMessage === 0 && seqConflicts === 0;
  return total;
}
