#!/usr/bin/env node
// Live delivery's two possible paths, side by side on a private nats-server (issue 21, step 2):
//
//   republish  the stream republishes every stored event on a core subject (what Parley does:
//              `<ns>.live.chat.<chatId>`, packages/contracts/src/streams.ts);
//   core       the stream does not; the appending process publishes the event on the core
//              subject itself once the PubAck arrives;
//   both       the two together, as a gateway-side fast path would (built in e5e535b, measured
//              and reverted: docs/performance.md): the stream republishes and the appending
//              process publishes too; a subscriber takes whichever copy comes first and drops
//              the other.
//
// One connection appends (a gateway), two subscribe to every live subject (both gateways: the
// appending one receives its own events too). Open loop at `--rate` appends a second for
// `--seconds`, modes in turns for `--rounds` rounds. Prints, per run, NATS's CPU-seconds and the
// client process's per 1,000 appends (utime + stime from /proc and process.cpuUsage) and
// append→live-delivery latency at the second subscriber, as JSON.
//
//   node bench/republish.mjs --rate 2000 --seconds 10 --rounds 3 [--modes republish,both]
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { cpuSeconds } from './lib/proc.mjs';
import { quantile, startPrivateNats } from './lib/private-nats.mjs';
import { sleep } from './lib/system.mjs';

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string', default: '/usr/sbin/nats-server' },
    rate: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    chats: { type: 'string', default: '2000' },
    size: { type: 'string', default: '400' },
    modes: { type: 'string', default: 'republish,core,both' },
  },
});
const rate = Number(args.rate);
const seconds = Number(args.seconds);
const chats = Number(args.chats);

const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const ownCpu = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

const nats = await startPrivateNats(args.bin, 'republish');
const results = [];
try {
  const appender = await nats.connect({ noAsyncTraces: true });
  const other = await nats.connect();
  const jsm = await jetstreamManager(appender);
  const js = jetstream(appender);
  const payload = (i) => JSON.stringify({ type: 'MessageSent', seq: i, sentAt: performance.now(), pad: 'x'.repeat(Number(args.size)) });

  for (let r = 0; r < Number(args.rounds); r += 1) {
    for (const mode of args.modes.split(',')) {
      const name = `${mode}${r}`;
      await jsm.streams.add({
        name,
        subjects: [`${name}.chat.*`],
        ...(mode !== 'core' ? { republish: { src: `${name}.chat.*`, dest: `${name}.live.chat.{{wildcard(1)}}` } } : {}),
      });
      const latencies = [];
      let received = 0;
      let dropped = 0;
      const seen = new Uint8Array(rate * seconds);
      // Both "gateways" follow every chat; latency is measured where the append did not happen.
      // At the appender: when each republished copy came, to tell whether it beats the PubAck.
      const ownLive = new Float64Array(rate * seconds);
      let republishBeforeAck = 0;
      const own = appender.subscribe(`${name}.live.chat.*`, {
        callback: (_err, msg) => {
          if (mode === 'core' || msg.headers?.get('Nats-Sequence') === undefined) return;
          ownLive[msg.json().seq] = performance.now();
        },
      });
      const peer = other.subscribe(`${name}.live.chat.*`, {
        callback: (_err, msg) => {
          const event = msg.json();
          if (seen[event.seq]) {
            dropped += 1;
            return;
          }
          seen[event.seq] = 1;
          received += 1;
          latencies.push(performance.now() - event.sentAt);
        },
      });
      await appender.flush();
      await other.flush();
      const total = rate * seconds;
      const [natsBefore, ownBefore] = [cpuSeconds(nats.pid), ownCpu()];
      const started = performance.now();
      let sent = 0;
      const pending = new Set();
      while (sent < total) {
        const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
        for (; sent < due; sent += 1) {
          const chat = sent % chats;
          const data = payload(sent);
          const i = sent;
          const p = js.publish(`${name}.chat.${chat}`, data).then((ack) => {
            if (ownLive[i] > 0) republishBeforeAck += 1;
            if (mode !== 'republish') appender.publish(`${name}.live.chat.${chat}`, data);
            pending.delete(p);
            return ack;
          });
          pending.add(p);
        }
        await sleep(1);
      }
      await Promise.all(pending);
      while (received < total) await sleep(5);
      const [natsCpu, clientCpu] = [cpuSeconds(nats.pid) - natsBefore, ownCpu() - ownBefore];
      latencies.sort((a, b) => a - b);
      results.push({
        round: r + 1,
        mode,
        appends: total,
        natsCpuPer1k: round((natsCpu / total) * 1000, 3),
        clientCpuPer1k: round((clientCpu / total) * 1000, 3),
        deliverP50ms: round(quantile(latencies, 0.5)),
        deliverP99ms: round(quantile(latencies, 0.99)),
        deliverP999ms: round(quantile(latencies, 0.999)),
        secondCopiesDropped: dropped,
        republishBeforeAckShare: mode === 'core' ? null : round(republishBeforeAck / total, 4),
      });
      console.error(JSON.stringify(results.at(-1)));
      own.unsubscribe();
      peer.unsubscribe();
      await jsm.streams.delete(name);
    }
  }
  await appender.close();
  await other.close();
} finally {
  await nats.stop();
}
console.log(JSON.stringify({ nats: nats.version, rate, seconds, chats, results }, null, 2));
