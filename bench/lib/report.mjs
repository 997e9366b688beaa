// The report: targets from issue 9 checked against the figures, and a markdown rendering of the
// JSON result (printed at the end and written next to it).

const fmt = (v, digits = 1) => (v === null || v === undefined ? '–' : typeof v === 'number' ? v.toLocaleString('en', { maximumFractionDigits: digits }) : String(v));
const PARLEY_SERVERS = ['gatewayA', 'gatewayB', 'messages', 'users'];

/** The step whose offered rate is `rate`, or else the highest step below it. */
function stepAt(phases, rate) {
  const steps = phases.filter((p) => p.kind === 'step');
  return steps.find((p) => p.offeredRate === rate) ?? steps.filter((p) => p.offeredRate < rate).at(-1) ?? null;
}

function parleyCpuPer1000(phase) {
  if (!phase || phase.acked === 0) return null;
  const s = PARLEY_SERVERS.reduce((n, k) => n + (phase.cpuSeconds[k] ?? 0), 0);
  return Math.round((s / phase.acked) * 1000 * 1000) / 1000;
}

export function evaluateTargets(results) {
  const { phases, knee, highestStepHeld } = results.parley;
  const verified = results.parley.verification?.ok ?? false;
  const at5k = stepAt(phases, 5000);
  const label5k = at5k ? (at5k.offeredRate === 5000 ? 'at 5,000 msg/s' : `at ${at5k.offeredRate} msg/s (no 5,000 step ran)`) : 'no step ran';
  const soak = phases.find((p) => p.kind === 'soak');
  const cpuPhase = soak ?? phases.filter((p) => p.kind === 'step').at(-1);
  const best = phases.filter((p) => p.kind === 'step' && p.kneeReasons.length === 0).sort((a, b) => b.acceptedPerSecond - a.acceptedPerSecond)[0];
  const idle = results.parley.idle;
  const cpu = parleyCpuPer1000(cpuPhase);
  return [
    {
      target: '10,000 accepted msg/s sustained, nothing lost or doubled',
      measured: best ? `${fmt(best.acceptedPerSecond, 0)} msg/s held (step ${fmt(best.offeredRate, 0)}/s)${knee ? `; knee at ${fmt(knee.rate, 0)}/s` : '; no knee in the steps run'}; delivery check ${verified ? 'passed' : 'FAILED'}` : 'no step held',
      met: Boolean(best && best.acceptedPerSecond >= 9_500 && highestStepHeld >= 10_000 && verified),
    },
    {
      target: 'send-to-deliver p99 ≤ 25 ms at 5,000 msg/s',
      measured: at5k ? `${fmt(at5k.sendToDeliverMs.p99)} ms ${label5k}` : label5k,
      met: Boolean(at5k && at5k.offeredRate === 5000 && at5k.sendToDeliverMs.p99 !== null && at5k.sendToDeliverMs.p99 <= 25),
    },
    {
      target: 'send-to-queryable p99 ≤ 250 ms at 5,000 msg/s',
      measured: at5k?.sendToQueryableMs ? `${fmt(at5k.sendToQueryableMs.p99)} ms ${label5k}` : label5k,
      met: Boolean(at5k && at5k.offeredRate === 5000 && at5k.sendToQueryableMs?.p99 !== null && at5k.sendToQueryableMs?.p99 <= 250),
    },
    {
      target: 'gateway memory per idle connection ≤ 4 KiB',
      measured: idle ? `${fmt(idle.bytesPerConnection / 1024, 2)} KiB (${fmt(idle.opened, 0)} connections)` : 'idle phase not run',
      met: Boolean(idle && idle.bytesPerConnection !== null && idle.bytesPerConnection <= 4096),
    },
    {
      target: 'server CPU per 1,000 messages ≤ 0.15 s (gateways + messages + users)',
      measured: cpuPhase ? `${fmt(cpu, 3)} s (${cpuPhase.name}; with NATS and Postgres backends ${fmt(cpu + ((cpuPhase.cpuSeconds.nats ?? 0) + (cpuPhase.cpuSeconds.postgres ?? 0)) / cpuPhase.acked * 1000, 3)} s)` : '–',
      met: cpu !== null && cpu <= 0.15,
    },
  ];
}

function latency(s) {
  return s && s.count ? `${fmt(s.p50)} / ${fmt(s.p99)} / ${fmt(s.p999)}` : '–';
}

function phaseTable(phases, { parley }) {
  const rows = [];
  const head = parley
    ? '| phase | offered msg/s | accepted msg/s | delivered frames/s | send→ack ms p50 / p99 / p99.9 | send→deliver ms p50 / p99 / p99.9 | send→queryable ms p50 / p99 | errors (retries) | server CPU s per 1k msgs (gw A + gw B + messages + users) | NATS + PG s per 1k | generator cores (ELU per worker), schedule lag p99 ms | verdict |'
    : '| phase | offered msg/s | accepted msg/s | delivered frames/s | send→ack ms p50 / p99 / p99.9 | send→deliver ms p50 / p99 / p99.9 | errors (retries) | ceiling CPU s per 1k msgs | generator cores (ELU per worker), schedule lag p99 ms | verdict |';
  rows.push(head, head.replace(/[^|]+/g, ' --- '));
  for (const p of phases) {
    const failed = Object.values(p.sendErrors).reduce((a, b) => a + b, 0) + p.notSent;
    const errors = p.retries ? `${failed} (+${p.retries} retried)` : failed;
    const c = p.cpuSecondsPer1000Messages;
    const verdict = (p.kind === 'warmup' ? 'warm-up' : p.kneeReasons.length ? `**knee**: ${p.kneeReasons.join('; ')}` : 'held') + (p.warnings?.length ? ` (${p.warnings.join('; ')})` : '');
    const gen = `${fmt(p.generator.cpuCores, 2)} (${p.generator.eventLoopUtilization.map((v) => fmt(v, 2)).join(', ')}), ${fmt(p.generator.scheduleLagMs.p99)}`;
    if (parley) {
      const sumServers = PARLEY_SERVERS.reduce((n, k) => n + (c[k] ?? 0), 0);
      const q = p.sendToQueryableMs;
      rows.push(
        `| ${p.name} | ${fmt(p.offeredRate, 0)} | ${fmt(p.acceptedPerSecond, 0)} | ${fmt(p.deliveredFramesPerSecond, 0)} | ${latency(p.sendToAckMs)} | ${latency(p.sendToDeliverMs)} | ${q && q.count ? `${fmt(q.p50)} / ${fmt(q.p99)}` : '–'} | ${errors} | ${fmt(sumServers, 3)} (${['gatewayA', 'gatewayB', 'messages', 'users'].map((k) => fmt(c[k], 3)).join(' + ')}) | ${fmt((c.nats ?? 0) + (c.postgres ?? 0), 3)} | ${gen} | ${verdict} |`,
      );
    } else {
      rows.push(`| ${p.name} | ${fmt(p.offeredRate, 0)} | ${fmt(p.acceptedPerSecond, 0)} | ${fmt(p.deliveredFramesPerSecond, 0)} | ${latency(p.sendToAckMs)} | ${latency(p.sendToDeliverMs)} | ${errors} | ${fmt(c.ceiling, 3)} | ${gen} | ${verdict} |`);
    }
  }
  return rows.join('\n');
}

function idleLine(idle, what) {
  if (!idle) return `- ${what}: not run`;
  const closed = Object.keys(idle.closedByServer ?? {}).length ? `; **the server closed ${Object.values(idle.closedByServer).reduce((a, b) => a + b, 0)} after they opened** (close codes ${JSON.stringify(idle.closedByServer)}), ${fmt(idle.stillOpenAfterHold, 0)} still open at the end` : '';
  return `- ${what}: ${fmt(idle.opened, 0)} of ${fmt(idle.requested, 0)} connections opened${closed} (${fmt(idle.connectsPerSecond, 0)} connects/s, ${idle.holderProcesses} holder process(es), ${idle.sourceAddresses} source address(es)${typeof idle.setupSecondsAfterConnects === 'number' ? `, every set-up done ${fmt(idle.setupSecondsAfterConnects, 1)} s after the last connect` : ''}); RSS${idle.memoryAfterGc ? ' after a full collection' : ''} ${Object.entries(idle.rssBeforeMiB).map(([k, v]) => `${k} ${fmt(v)} → ${fmt(idle.rssAfterMiB[k])} MiB`).join(', ')}; **${fmt(idle.bytesPerConnection / 1024, 2)} KiB per open connection**${typeof idle.heapBytesPerConnection === 'number' ? ` (of which live JS heap ${fmt(idle.heapBytesPerConnection / 1024, 2)} KiB)` : ''}; CPU while idle ${Object.entries(idle.cpuSecondsWhileIdle).map(([k, v]) => `${k} ${fmt(v, 2)} s`).join(', ')} over ${idle.holdSeconds} s${idle.serverSideOpenCount !== null && idle.serverSideOpenCount !== undefined ? `; gateways report ${fmt(idle.serverSideOpenCount, 0)} open sockets (idle + load)` : ''}${idle.failed ? `; failures ${JSON.stringify(idle.errors)}` : ''}`;
}

function verificationLine(v, what) {
  if (!v) return `- ${what}: not run`;
  return `- ${what}: ${fmt(v.acked, 0)} acknowledged messages, ${fmt(v.recipientChecks, 0)} (recipient socket, message) checks: missing **${v.missing}**, duplicated **${v.duplicates}**, wrong message ${v.wrongMessage}, seq conflicts ${v.seqConflicts}; delivered without an ack reaching us ${v.unackedDeliveries} → **${v.ok ? 'exactly once' : 'FAILED'}**`;
}

export function renderMarkdown(r) {
  const m = r.machine;
  const lines = [];
  lines.push(`# Parley load benchmark, ${r.startedAt}`);
  lines.push('');
  lines.push(`\`${r.command}\` · commit ${m.gitCommit?.slice(0, 12) ?? 'unknown'}${m.gitDirty ? ' (with uncommitted changes)' : ''} · Node ${m.node} · NATS ${m.natsServer ?? 'unknown'} · ${m.cores} × ${m.cpuModel} · ${m.memoryGiB} GiB · ${m.platform} · load average at start ${m.loadAverageAtStart.join(' ')}, at end ${m.loadAverageAtEnd?.join(' ') ?? '–'} · ${r.durationSeconds} s`);
  lines.push('');
  if (r.error) lines.push(`**The run failed:** \`${r.error.split('\n')[0]}\``, '');
  for (const note of r.notes) lines.push(`**${note}**`, '');
  if (r.setup) {
    const s = r.setup;
    lines.push(
      `Setup${r.options.profile === 'pairs' ? ' (profile pairs: disjoint pairs, one direct chat and one sender each)' : ''}: ${fmt(s.users, 0)} users (registered through the API in ${s.registrationSeconds} s, ${s.registrationsPerSecond}/s), ${fmt(s.chats, 0)} chats (${s.chatKinds.direct} direct, ${s.chatKinds.small} groups of about ${r.options.smallGroupSize}, ${s.chatKinds.large} of about ${r.options.largeGroupSize}), ${s.deliveriesPerMessage} deliveries per message (sender's own socket included), ${Math.round(s.recipientsOnOtherGateway * 100)} % of recipients on the other gateway, ${fmt(s.loadConnections, 0)} load connections over 2 gateways${typeof s.loadConnectSeconds === 'number' ? ` (each its user's first: all open in ${s.loadConnectSeconds} s, CPU-seconds meanwhile ${Object.entries(s.loadConnectCpuSeconds ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}, ${r.options.workers} generator threads, bodies of ${r.options.bodyBytes} bytes, typing ${r.options.typingRatio} per message, read receipts ${r.options.readRatio} per delivery.`,
      '',
    );
  }
  if (r.targets?.length) {
    lines.push('## Targets', '', '| target | measured | met |', '| --- | --- | --- |');
    for (const t of r.targets) lines.push(`| ${t.target} | ${t.measured} | ${t.met ? 'yes' : '**no**'} |`);
    lines.push('');
  }
  if (r.parley?.phases) {
    lines.push('## Parley (2 gateways, messages, users, NATS JetStream, PostgreSQL)', '');
    lines.push(phaseTable(r.parley.phases, { parley: true }), '');
    lines.push(`Knee: ${r.parley.knee ? `**${fmt(r.parley.knee.rate, 0)} msg/s** (${r.parley.knee.reasons.join('; ')})` : 'not reached in the steps run'}; highest step held: ${fmt(r.parley.highestStepHeld, 0)} msg/s.`, '');
    lines.push(verificationLine(r.parley.verification, 'Delivery check'));
    lines.push(idleLine(r.parley.idle, 'Idle phase'));
    const counters = r.parley.counters ?? [];
    const sum = (k) => counters.reduce((n, c) => n + (c[k] ?? 0), 0);
    const other = counters.reduce((all, c) => {
      for (const [k, v] of Object.entries(c.otherErrors ?? {})) all[k] = (all[k] ?? 0) + v;
      return all;
    }, {});
    const appends = r.parley.appends ?? {};
    lines.push(`- Gateways' JetStream appends (whole run): stored ${fmt(appends.stored ?? 0, 0)}, duplicates ${fmt(appends.duplicate ?? 0, 0)}, expected-sequence conflicts (retried on the new head) ${fmt(appends.conflict ?? 0, 0)}, errors ${fmt(appends.error ?? 0, 0)}`);
    if (typeof r.parley.presenceWritesPerSecond === 'number') lines.push(`- Presence bucket writes during the load phases (heartbeats, with every user online): ${r.parley.presenceWritesPerSecond}/s`);
    lines.push(`- Socket events: reconnects ${sum('reconnects')}, resets ${sum('resets')}, out-of-order deliveries ${sum('outOfOrder')}, other error frames ${JSON.stringify(other)}, typing frames received ${sum('typingReceived')}, read.updated ${sum('readUpdates')}, presence ${sum('presenceReceived')}`);
    lines.push('');
  }
  if (r.ceiling?.phases) {
    lines.push('## Ceiling: the same sockets and frames through bare uWebSockets.js (one process, two ports, no NATS, no Postgres)', '');
    lines.push(phaseTable(r.ceiling.phases, { parley: false }), '');
    lines.push(`Knee: ${r.ceiling.knee ? `**${fmt(r.ceiling.knee.rate, 0)} msg/s** (${r.ceiling.knee.reasons.join('; ')})` : 'not reached in the steps run'}; highest step held: ${fmt(r.ceiling.highestStepHeld, 0)} msg/s.`, '');
    lines.push(verificationLine(r.ceiling.verification, 'Delivery check (of the generator itself)'));
    lines.push(idleLine(r.ceiling.idle, 'Idle phase'));
    if (r.parley?.highestStepHeld && r.ceiling.highestStepHeld) {
      lines.push(`- Parley holds ${Math.round((r.parley.highestStepHeld / r.ceiling.highestStepHeld) * 100)} % of the ceiling's highest held step (${fmt(r.parley.highestStepHeld, 0)} vs ${fmt(r.ceiling.highestStepHeld, 0)} msg/s); when the ceiling held every step, its real limit is higher still (or the generator's).`);
    }
    lines.push('');
  }
  lines.push('## Notes', '');
  lines.push('- Everything runs on one machine: servers, NATS, PostgreSQL and the load generator share its cores; the generator\'s CPU is reported apart (cores used over the phase; event-loop utilisation of each worker thread near 1 means the generator, not the server, was the limit).');
  lines.push('- Latencies are measured from the *scheduled* send time (open loop, no coordinated omission); send→deliver excludes the sender\'s own copy, which is still checked for exactly-once delivery. Send→queryable polls PostgreSQL every 20 ms for a sample of acked ids (upper bound, ±1 poll).');
  lines.push('- CPU per 1,000 messages: utime + stime from /proc over the phase and its drain, divided by the messages acked. NATS, Redis and PostgreSQL are shared servers: their figures include anything else using them at the time (PostgreSQL: only the backends of the bench database).');
  if ((r.options.typingRatio ?? 0) === 0 && (r.options.readRatio ?? 0) === 0) lines.push('- Typing notices and read receipts were off (ratio flags default to 0; `--typing-ratio`, `--read-ratio` turn them on).');
  lines.push(`- The idle phase opens several connections per user (${fmt(r.options.idleConnections, 0)} connections for ${fmt(r.options.users, 0)} users): registration costs an argon2 hash each, and memory per connection does not depend on how many users hold them.`);
  if ((m.loadAverageAtStart?.[0] ?? 0) > m.cores * 0.5) lines.push(`- **The machine was busy with other work** (load average ${m.loadAverageAtStart.join(' ')} at start on ${m.cores} cores): treat the figures as a lower bound.`);
  lines.push('');
  return lines.join('\n');
}
