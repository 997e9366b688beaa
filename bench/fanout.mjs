#!/usr/bin/env node
// The gateway's fan-out alone (issue 21, step 1): the same event frames to the same sockets,
// through the gateway's per-socket path or through uWebSockets.js's own topic publish.
//
//   outbox  what the gateway does: ChatDelivery's per-socket path (the real class, from
//           services/gateway/dist/ws/delivery.js): per recipient socket a seq check, a
//           buffered-amount check and a frame queued in the Outbox, which writes each socket's
//           frames corked once per event-loop turn;
//   topic   a bare `app.publish` per event on the chat's topic, every socket subscribed: the loop
//           over the subscribers in C++, and no seq bookkeeping, hold or slow-reader check at all.
//           What topics could save at most. (Delivery through topics with those kept was built in
//           184cf49 and reverted: docs/performance.md.)
//
// Each run is a uWebSockets.js server in a process of its own, with `--sockets` WebSocket clients
// in a child process of that (ws, reading and counting every frame), `--chats` chats of
// `--members` sockets each. Open loop at `--rate` events a second for `--seconds`, modes in turns
// for `--rounds` rounds. Prints, per run, the server's and the client's CPU-seconds per 1,000
// frames delivered, and whether every frame arrived.
//
//   node bench/fanout.mjs --rate 2000 --seconds 10 --rounds 3
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import uWS from 'uWebSockets.js';
import { cpuSeconds } from './lib/proc.mjs';
import { sleep } from './lib/system.mjs';

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    mode: { type: 'string', default: 'topic' },
    port: { type: 'string', default: '0' },
    rate: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    sockets: { type: 'string', default: '2000' },
    chats: { type: 'string', default: '1000' },
    members: { type: 'string', default: '6' },
    size: { type: 'string', default: '300' },
    modes: { type: 'string', default: 'outbox,topic' },
  },
});
const sockets = Number(args.sockets);

if (args.role === 'client') {
  // The client side: opens the sockets, counts frames, answers the parent's questions.
  const { default: WebSocket } = await import('ws');
  let frames = 0;
  const clients = [];
  for (let i = 0; i < sockets; i++) {
    const c = new WebSocket(`ws://127.0.0.1:${args.port}/`);
    c.on('message', () => {
      frames += 1;
    });
    clients.push(new Promise((resolve, reject) => {
      c.once('open', resolve);
      c.once('error', reject);
    }));
    if (i % 200 === 199) await Promise.all(clients.slice(-200));
  }
  await Promise.all(clients);
  process.send({ open: sockets });
  process.on('message', (m) => {
    if (m === 'count') process.send({ frames });
    if (m === 'exit') process.exit(0);
  });
} else if (args.role === 'main') {
  // Modes in turns, each run in a fresh server process.
  const passOn = ['rate', 'seconds', 'sockets', 'chats', 'members', 'size'].flatMap((k) => [`--${k}`, String(args[k])]);
  for (let round = 1; round <= Number(args.rounds); round++) {
    for (const mode of args.modes.split(',')) {
      const server = fork(new URL(import.meta.url).pathname, ['--role', 'server', '--mode', mode, ...passOn]);
      const result = await new Promise((resolve) => server.once('message', resolve));
      console.log(JSON.stringify({ round, ...result }));
      await new Promise((resolve) => server.once('exit', resolve));
    }
  }
} else {
  const { ChatDelivery } = await import('../services/gateway/dist/ws/delivery.js');
  const metrics = { websocketMessages: { inc() {} } };
  const opened = [];
  const app = uWS.App();
  const delivery = new ChatDelivery(metrics, 4 * 1024 * 1024);
  app.ws('/*', {
    maxBackpressure: 8 * 1024 * 1024,
    upgrade: (res, req, context) => {
      const data = { closed: false, chats: new Map(), notIn: null, held: null, outbox: null, outboxBytes: 0 };
      res.upgrade({ state: data }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    open: (socket) => opened.push(socket),
    close: (socket) => {
      socket.getUserData().state.closed = true;
    },
  });
  const port = await new Promise((resolve, reject) => app.listen('127.0.0.1', 0, (token) => (token ? resolve(uWS.us_socket_local_port(token)) : reject(new Error('no port')))));
  const client = fork(new URL(import.meta.url).pathname, ['--role', 'client', '--port', String(port), '--sockets', String(sockets)]);
  const fromClient = (key) => new Promise((resolve) => client.once('message', (m) => resolve(m[key])));
  await fromClient('open');
  while (opened.length < sockets) await sleep(10);

  // Chats of `members` sockets each, every socket in about chats * members / sockets of them.
  const chats = Number(args.chats);
  const members = Number(args.members);
  const chatIds = Array.from({ length: chats }, (_, i) => `c${String(i).padStart(6, '0')}`);
  chatIds.forEach((chatId, i) => {
    for (let m = 0; m < members; m++) {
      const socket = opened[(i * members + m) % sockets];
      if (args.mode === 'topic') socket.subscribe(`chat/${chatId}`);
      else delivery.join(socket, chatId);
    }
  });
  const seqs = new Map(chatIds.map((id) => [id, 0]));
  const body = 'x'.repeat(Number(args.size));

  // One measured run per process: the main role alternates the modes across processes.
  client.send('count');
  const framesBefore = await fromClient('frames');
  const cpuBefore = process.cpuUsage();
  const clientCpuBefore = cpuSeconds(client.pid);
  const rate = Number(args.rate);
  const total = rate * Number(args.seconds);
  const started = performance.now();
  let sent = 0;
  while (sent < total) {
    // Open loop: every millisecond tick sends what the schedule says is due.
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
    for (; sent < due; sent++) {
      const chatId = chatIds[sent % chats];
      const seq = seqs.get(chatId) + 1;
      seqs.set(chatId, seq);
      // The frame made once per event, as ChatDelivery.publish does, then the fan-out (`deliver`
      // is private in TypeScript only: publish's loop without its toClientEvent).
      const frame = JSON.stringify({ op: 'event', type: 'message.created', chatId, seq, at: new Date().toISOString(), data: { body } });
      if (args.mode === 'topic') app.publish(`chat/${chatId}`, frame, false);
      else for (const socket of delivery.socketsIn(chatId)) delivery.deliver(socket, chatId, seq, frame);
    }
    await sleep(1);
  }
  const cpu = process.cpuUsage(cpuBefore);
  const expected = total * members;
  let frames = 0;
  const deadline = Date.now() + 30_000;
  do {
    await sleep(50);
    client.send('count');
    frames = (await fromClient('frames')) - framesBefore;
  } while (frames < expected && Date.now() < deadline);
  const serverCpu = (cpu.user + cpu.system) / 1e6;
  const clientCpu = cpuSeconds(client.pid) - clientCpuBefore;
  process.send({
    mode: args.mode,
    events: total,
    frames,
    expected,
    serverCpuPer1kFrames: Number(((serverCpu / frames) * 1000).toFixed(4)),
    serverUserShare: Number((cpu.user / (cpu.user + cpu.system)).toFixed(2)),
    clientCpuPer1kFrames: Number(((clientCpu / frames) * 1000).toFixed(4)),
    seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
  });
  client.send('exit');
  process.exit(0);
}
