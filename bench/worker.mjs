// One load-generator thread. It owns a share of the simulated clients (one WebSocket each), sends
// messages on an open-loop schedule (arrivals at precomputed times, never waiting for acks, and
// latency measured from the scheduled time, so a slow server cannot hide behind a slow generator:
// no coordinated omission), and records what every one of its sockets receives, so that the main
// thread can prove each acknowledged message reached each recipient exactly once.
import { parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';
import { Histogram } from './lib/histogram.mjs';

const { workerIndex, workerCount, seed } = workerData;
/** Monotonic, system-wide milliseconds (CLOCK_MONOTONIC): comparable across threads. */
const now = () => Number(process.hrtime.bigint()) / 1e6;

let rngState = seed >>> 0 || 1;
/** xorshift32: reproducible and cheap; Math.random would do too, but this keeps runs comparable. */
function random() {
  rngState ^= rngState << 13;
  rngState ^= rngState >>> 17;
  rngState ^= rngState << 5;
  return (rngState >>> 0) / 4294967296;
}

/** FNV-1a of a message id: 4 bytes per delivery record instead of a 36-character string. */
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

class IntPairs {
  constructor(capacity = 16) {
    this.a = new Int32Array(capacity);
    this.b = new Int32Array(capacity);
    this.n = 0;
  }
  push(x, y) {
    if (this.n === this.a.length) {
      const a = new Int32Array(this.n * 2);
      const b = new Int32Array(this.n * 2);
      a.set(this.a);
      b.set(this.b);
      this.a = a;
      this.b = b;
    }
    this.a[this.n] = x;
    this.b[this.n] = y;
    this.n += 1;
  }
}

// ---- world: chats and the clients this worker owns ----
let chatIds = [];
const chatIndex = new Map();
let chatSize = new Int32Array(0);
/** clients[i]: { userId, chats: number[], ws, url, ... } */
let clients = [];
/** Weighted choice of (chat, sender): a message picks a chat uniformly, then a member uniformly. */
let pickCum = new Float64Array(0);
let pickChat = new Int32Array(0);
let pickClient = new Int32Array(0);
let share = 0;

function setWorld({ chats, ownClients }) {
  chatIds = chats.map((c) => c.id);
  chatIndex.clear();
  chatIds.forEach((id, i) => chatIndex.set(id, i));
  chatSize = Int32Array.from(chats, (c) => c.members.length);
  const local = new Map();
  clients = ownClients.map((c, i) => {
    local.set(c.userIndex, i);
    return { ...c, chats: [], ws: null, open: false, intentional: false, outstanding: new Map(), recs: new Map(), lastSeq: new Map(), lastMsg: new Map() };
  });
  const cum = [];
  const pc = [];
  const pl = [];
  let total = 0;
  chats.forEach((chat, ci) => {
    for (const member of chat.members) {
      const li = local.get(member);
      if (li !== undefined) clients[li].chats.push(ci);
    }
    // Who may send: every member, or the chat's designated senders (the pairs profile).
    const senders = chat.senders ?? chat.members;
    for (const member of senders) {
      const li = local.get(member);
      if (li === undefined) continue;
      total += 1 / (chats.length * senders.length);
      cum.push(total);
      pc.push(ci);
      pl.push(li);
    }
  });
  pickCum = Float64Array.from(cum);
  pickChat = Int32Array.from(pc);
  pickClient = Int32Array.from(pl);
  share = total;
  return { clients: clients.length, share };
}

function pick() {
  const r = random() * share;
  let lo = 0;
  let hi = pickCum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pickCum[mid] < r) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---- per-phase statistics (attributed to the phase a message was sent in) ----
const phases = new Map();
function phaseStats(phase) {
  let s = phases.get(phase);
  if (!s) {
    s = {
      scheduled: 0,
      sent: 0,
      notSent: 0,
      acked: 0,
      sendErrors: {},
      expected: 0,
      delivered: 0,
      ack: new Histogram(),
      deliver: new Histogram(),
      lag: new Histogram(),
      typingSent: 0,
      readSent: 0,
      retries: 0,
    };
    phases.set(phase, s);
  }
  return s;
}
/** Arrival-time window of the running phase: acks and deliveries that land inside it. */
let win = { start: Infinity, end: -Infinity, acks: 0, delivered: 0 };
const counters = { otherErrors: {}, typingReceived: 0, presenceReceived: 0, readUpdates: 0, otherEvents: 0, strayAcks: 0, closes: {}, reconnects: 0, resets: 0, outOfOrder: 0, badBodies: 0 };
const acks = { chat: new IntPairs(1024), seqHash: new IntPairs(1024) };
let samples = [];
let sampleFraction = 0;
let readRatio = 0;
let recordDeliveries = true;

function bump(map, key, by = 1) {
  map[key] = (map[key] ?? 0) + by;
}

// ---- sockets ----
function onFrame(client, data) {
  const t = now();
  let f;
  try {
    f = JSON.parse(data.toString());
  } catch {
    bump(counters.otherErrors, 'bad_json_from_server');
    return;
  }
  switch (f.op) {
    case 'ack': {
      const o = client.outstanding.get(f.clientMsgId);
      if (!o) {
        counters.strayAcks += 1;
        return;
      }
      client.outstanding.delete(f.clientMsgId);
      const s = phaseStats(o.phase);
      s.acked += 1;
      s.ack.record(t - o.t0);
      s.expected += chatSize[o.chat];
      if (t >= win.start && t < win.end) win.acks += 1;
      acks.chat.push(o.chat, o.phase);
      acks.seqHash.push(f.seq, hash(f.messageId));
      if (sampleFraction > 0 && random() < sampleFraction) samples.push({ id: f.messageId, t0: o.t0, phase: o.phase });
      return;
    }
    case 'event': {
      if (f.type !== 'message.created') {
        if (f.type === 'read.updated') counters.readUpdates += 1;
        else counters.otherEvents += 1;
        return;
      }
      const ci = chatIndex.get(f.chatId);
      if (ci === undefined) {
        counters.otherEvents += 1;
        return;
      }
      const body = f.data?.body ?? '';
      const bar1 = body.indexOf('|');
      const bar2 = body.indexOf('|', bar1 + 1);
      const phase = Number(body.slice(0, bar1));
      const t0 = Number(body.slice(bar1 + 1, bar2));
      if (bar1 < 0 || bar2 < 0 || !Number.isFinite(t0)) {
        counters.badBodies += 1;
        return;
      }
      if (f.seq <= (client.lastSeq.get(ci) ?? 0)) counters.outOfOrder += 1;
      client.lastSeq.set(ci, f.seq);
      client.lastMsg.set(ci, f.data.id);
      if (recordDeliveries) {
        let rec = client.recs.get(ci);
        if (!rec) client.recs.set(ci, (rec = new IntPairs(8)));
        rec.push(f.seq, hash(f.data.id));
      }
      const s = phaseStats(phase);
      s.delivered += 1;
      if (t >= win.start && t < win.end) win.delivered += 1;
      // Latency to the recipients; the sender's own copy (its other devices) is counted, not timed.
      if (f.data.senderId !== client.userId) {
        s.deliver.record(t - t0);
        if (readRatio > 0 && random() < readRatio && client.open) {
          client.ws.send(`{"op":"read","chatId":"${f.chatId}","messageId":"${f.data.id}"}`);
          s.readSent += 1;
        }
      }
      return;
    }
    case 'error': {
      const o = f.ref !== undefined ? client.outstanding.get(f.ref) : undefined;
      if (!o) {
        bump(counters.otherErrors, f.code);
        return;
      }
      const s = phaseStats(o.phase);
      // "Not stored; retry with the same clientMsgId": the outcome is unknown (the event may be
      // stored), so a client resends, and the gateway must answer with the original's ack. The
      // bench does the same, so that these messages are checked for exactly-once delivery too.
      if (f.code === 'unavailable' && o.retries < MAX_RETRIES) {
        o.retries += 1;
        s.retries += 1;
        setTimeout(() => {
          if (client.outstanding.get(f.ref) === o && client.open) client.ws.send(o.frame);
        }, 250 * o.retries);
        return;
      }
      client.outstanding.delete(f.ref);
      bump(s.sendErrors, f.code);
      return;
    }
    case 'pong': {
      const resolve = client.onPong;
      client.onPong = null;
      resolve?.();
      return;
    }
    case 'typing':
      counters.typingReceived += 1;
      return;
    case 'presence':
      counters.presenceReceived += 1;
      return;
    case 'reset':
      counters.resets += 1;
      return;
    default:
      counters.otherEvents += 1;
  }
}

function openSocket(client, { resume }) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(client.url, { perMessageDeflate: false, localAddress: client.localAddress, handshakeTimeout: 15_000, maxPayload: 4 * 1024 * 1024 });
    client.ws = ws;
    client.intentional = false;
    let settled = false;
    const timer = setTimeout(() => fail(new Error('no pong within 20 s of connecting')), 20_000);
    const fail = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(error);
    };
    ws.on('message', (data) => onFrame(client, data));
    ws.on('unexpected-response', (_req, res) => fail(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.on('error', (error) => fail(error));
    ws.on('open', () => {
      client.open = true;
      if (resume) {
        // Cursors: the last seq seen per chat (1 = the chat's creation, before any message).
        const cursors = {};
        for (const ci of client.chats) cursors[chatIds[ci]] = client.lastSeq.get(ci) ?? 1;
        ws.send(JSON.stringify({ op: 'resume', cursors }));
      }
      // A pong means the gateway has the socket's chats and has released held live events.
      client.onPong = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      };
      ws.send('{"op":"ping"}');
    });
    ws.on('close', (code) => {
      client.open = false;
      if (client.intentional) return;
      bump(counters.closes, String(code));
      // Sends in flight on this socket have an unknown outcome: count them, never check them.
      for (const o of client.outstanding.values()) bump(phaseStats(o.phase).sendErrors, 'socket_closed');
      client.outstanding.clear();
      if (settled) reconnect(client);
      else fail(new Error(`closed with ${code} before ready`));
    });
  });
}

/** A real client reconnects and resumes; so does this one, and the reconnect is reported. */
function reconnect(client) {
  counters.reconnects += 1;
  setTimeout(() => {
    if (client.intentional) return;
    openSocket(client, { resume: true }).catch(() => {
      if (!client.intentional) reconnect(client);
    });
  }, 200);
}

async function connectAll({ urls, concurrency }) {
  for (const c of clients) {
    c.url = urls[c.userIndex].url;
    c.localAddress = urls[c.userIndex].localAddress;
    c.lastSeq.clear();
    c.lastMsg.clear();
  }
  let next = 0;
  let failed = 0;
  const errors = {};
  const runner = async () => {
    while (next < clients.length) {
      const c = clients[next++];
      for (let attempt = 0; ; attempt++) {
        try {
          await openSocket(c, { resume: false });
          break;
        } catch (error) {
          if (attempt >= 2) {
            failed += 1;
            bump(errors, error.message.slice(0, 80));
            break;
          }
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, runner));
  return { connected: clients.length - failed, failed, errors };
}

async function closeAll() {
  await Promise.all(
    clients.map(
      (c) =>
        new Promise((resolve) => {
          c.intentional = true;
          if (!c.ws || c.ws.readyState === WebSocket.CLOSED) return resolve();
          const timer = setTimeout(() => (c.ws.terminate(), resolve()), 3_000);
          c.ws.once('close', () => (clearTimeout(timer), resolve()));
          c.ws.close(1000);
        }),
    ),
  );
  for (const c of clients) c.open = false;
}

// ---- the open-loop sender ----
/** Resends of a send answered `unavailable` (250 ms, 500 ms, 750 ms apart) before giving up. */
const MAX_RETRIES = 3;
const FILLER = 'The quick brown fox jumps over the lazy dog while the benchmark keeps counting every single frame it sends out. ';
let msgCounter = 0;

function fire(phase, t0, bodyBytes, typingRatio) {
  const s = phaseStats(phase);
  s.scheduled += 1;
  const k = pick();
  const client = clients[pickClient[k]];
  const ci = pickChat[k];
  if (!client.open) {
    s.notSent += 1;
    return;
  }
  const chatId = chatIds[ci];
  // Typing notices before a message, at the configured ratio (may exceed 1: several per message).
  for (let r = typingRatio; r > 0; r -= 1) {
    if (r >= 1 || random() < r) {
      client.ws.send(`{"op":"typing","chatId":"${chatId}"}`);
      s.typingSent += 1;
    }
  }
  const clientMsgId = `w${workerIndex}-${++msgCounter}`;
  const head = `${phase}|${t0.toFixed(3)}|`;
  const body = head + FILLER.repeat(Math.ceil(bodyBytes / FILLER.length) + 1).slice(0, Math.max(0, bodyBytes - head.length));
  const frame = `{"op":"send","chatId":"${chatId}","clientMsgId":"${clientMsgId}","body":"${body}"}`;
  client.outstanding.set(clientMsgId, { t0, chat: ci, phase, frame, retries: 0 });
  client.ws.send(frame);
  s.sent += 1;
}

/**
 * Sends at `rate` messages/s in total (this worker's share of it) from `startAt` for `durationMs`.
 * Poisson arrivals: the gaps are exponential, so bursts happen as they do with real users.
 */
function runSchedule({ phase, rate, startAt, durationMs, bodyBytes, typingRatio }) {
  const myRate = rate * share;
  const end = startAt + durationMs;
  win = { start: startAt, end, acks: 0, delivered: 0 };
  const s = phaseStats(phase);
  const mark = performance.eventLoopUtilization();
  return new Promise((done) => {
    // The share of the send window this thread was busy: near 1 means the generator saturated.
    const resolve = () => {
      s.elu = performance.eventLoopUtilization(mark).utilization;
      done();
    };
    if (myRate <= 0) {
      setTimeout(resolve, Math.max(0, end - now()));
      return;
    }
    let next = startAt - Math.log(1 - random()) * (1000 / myRate);
    const tick = () => {
      const t = now();
      while (next <= t && next < end) {
        // How late the generator is against its own schedule: if this grows, the generator is
        // the bottleneck, and the report says so.
        s.lag.record(t - next);
        fire(phase, next, bodyBytes, typingRatio);
        next += -Math.log(1 - random()) * (1000 / myRate);
      }
      if (next >= end) {
        setTimeout(resolve, Math.max(0, end - now()));
        return;
      }
      setTimeout(tick, Math.max(0, Math.min(next - now(), 10)));
    };
    setTimeout(tick, Math.max(0, startAt - now()));
  });
}

function outstandingCount() {
  let n = 0;
  for (const c of clients) n += c.outstanding.size;
  return n;
}

function takeStats(phase) {
  const s = phaseStats(phase);
  return {
    scheduled: s.scheduled,
    sent: s.sent,
    notSent: s.notSent,
    acked: s.acked,
    sendErrors: s.sendErrors,
    expected: s.expected,
    delivered: s.delivered,
    typingSent: s.typingSent,
    readSent: s.readSent,
    retries: s.retries,
    elu: s.elu ?? null,
    ack: s.ack.toJSON(),
    deliver: s.deliver.toJSON(),
    lag: s.lag.toJSON(),
  };
}

/**
 * Checks every socket of this worker against the acknowledged messages: for each chat the client
 * is in, each acked seq must have arrived exactly once, with the acked message id.
 */
function verify({ chatAcks }) {
  const result = { checked: 0, missing: 0, duplicates: 0, wrongMessage: 0, unackedDeliveries: 0, examples: [] };
  const note = (kind, client, ci, seq) => {
    if (result.examples.length < 10) result.examples.push({ kind, userId: client.userId, chatId: chatIds[ci], seq });
  };
  for (const client of clients) {
    for (const ci of client.chats) {
      const acked = chatAcks[ci];
      const rec = client.recs.get(ci);
      const got = new Map();
      if (rec) {
        for (let i = 0; i < rec.n; i++) {
          const seq = rec.a[i];
          const entry = got.get(seq);
          if (entry) entry.count += 1;
          else got.set(seq, { count: 1, hash: rec.b[i] });
        }
      }
      const ackedSeqs = new Set();
      for (let i = 0; i < acked.seqs.length; i++) {
        const seq = acked.seqs[i];
        ackedSeqs.add(seq);
        result.checked += 1;
        const entry = got.get(seq);
        if (!entry) {
          result.missing += 1;
          note('missing', client, ci, seq);
        } else {
          if (entry.count > 1) {
            result.duplicates += entry.count - 1;
            note('duplicate', client, ci, seq);
          }
          if (entry.hash !== acked.hashes[i]) {
            result.wrongMessage += 1;
            note('wrong_message', client, ci, seq);
          }
        }
      }
      for (const [seq, entry] of got) {
        if (ackedSeqs.has(seq)) continue;
        // Stored, but its ack never reached us (socket closed, timeout): counted, not a failure;
        // a second copy of it would still be a duplicate.
        result.unackedDeliveries += 1;
        if (entry.count > 1) {
          result.duplicates += entry.count - 1;
          note('duplicate_unacked', client, ci, seq);
        }
      }
    }
  }
  return result;
}

function resetRecords() {
  for (const c of clients) {
    c.recs.clear();
    c.lastSeq.clear();
    c.lastMsg.clear();
    c.outstanding.clear();
  }
  phases.clear();
  acks.chat = new IntPairs(1024);
  acks.seqHash = new IntPairs(1024);
  for (const key of Object.keys(counters)) counters[key] = typeof counters[key] === 'number' ? 0 : {};
  samples = [];
}

// Samples of acked messages go to the main thread, which polls Postgres for them.
setInterval(() => {
  if (samples.length === 0) return;
  parentPort.postMessage({ type: 'samples', items: samples });
  samples = [];
}, 50).unref();

const handlers = {
  world: setWorld,
  connect: connectAll,
  closeAll,
  configure: (o) => {
    sampleFraction = o.sampleFraction ?? sampleFraction;
    readRatio = o.readRatio ?? readRatio;
    recordDeliveries = o.recordDeliveries ?? recordDeliveries;
    return {};
  },
  run: runSchedule,
  progress: ({ phase }) => {
    const s = phaseStats(phase);
    return { sent: s.sent, acked: s.acked, errors: Object.values(s.sendErrors).reduce((a, b) => a + b, 0), expected: s.expected, delivered: s.delivered, outstanding: outstandingCount() };
  },
  stats: ({ phase }) => ({ ...takeStats(phase), window: { acks: win.acks, delivered: win.delivered } }),
  counters: () => ({ ...counters, elu: performance.eventLoopUtilization().utilization, openSockets: clients.filter((c) => c.open).length }),
  acks: () => ({ chat: acks.chat.a.slice(0, acks.chat.n), seq: acks.seqHash.a.slice(0, acks.seqHash.n), hash: acks.seqHash.b.slice(0, acks.seqHash.n) }),
  verify,
  reset: () => (resetRecords(), {}),
};

parentPort.on('message', async ({ id, cmd, args }) => {
  try {
    const result = await handlers[cmd](args ?? {});
    parentPort.postMessage({ type: 'reply', id, result });
  } catch (error) {
    parentPort.postMessage({ type: 'reply', id, error: String(error?.stack ?? error) });
  }
});
parentPort.postMessage({ type: 'ready', workerIndex, workerCount });
