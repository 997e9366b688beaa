#!/usr/bin/env node
// How fast one reader takes a stream's events, by the way it reads: the retention scan's cost.
//
// Starts a private nats-server (`--bin`), stores `--messages` chat events of about 500 bytes with
// the headers Parley's events carry, then reads them all `--rounds` times per mode, in alternation,
// parsing each event's JSON and its time as the scan does (services/retention/src/scan.ts):
// - `iterator`: readStream from @parley/bus (an ordered pull consumer, consume() and its async
//   iterator, one await per message: what the scan did before readStreamSync);
// - `sync`: readStreamSync from @parley/bus (the same consumer, each message handed over in
//   consume()'s callback: what the scan does since it stopped awaiting per message);
// - `raw`: a core subscription on a push consumer's deliver subject (ack none, flow control): the
//   stream sequence taken from the reply subject by hand, no JsMsg.
// Prints events a second and the reader's CPU share for each.
//
//   node bench/scan-read.mjs --messages 400000
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createInbox, headers } from '@nats-io/nats-core';
import { readStream, readStreamSync } from '@parley/bus';
import { seedStream, startPrivateNats } from './lib/private-nats.mjs';

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string', default: '/usr/sbin/nats-server' },
    messages: { type: 'string', default: '400000' },
    rounds: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'iterator,sync,raw' },
  },
});
const total = Number(args.messages);
const nats = await startPrivateNats(args.bin, 'scan-read');
try {
  const nc = await nats.connect();
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await jsm.streams.add({ name: 'S', subjects: ['S.>'] });
  const text = 'x'.repeat(120);
  await seedStream(js, total, (n) => {
    const h = headers();
    h.set('Nats-Msg-Id', `send:${n}:abcdefabcdef`);
    h.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    h.set('Parley-Event-Type', 'MessageSent');
    const event = { type: 'MessageSent', version: 1, chatId: `c${n % 200}`, seq: Math.floor(n / 200) + 1, data: { messageId: `m${n}`, senderId: 'u1', text, attachmentIds: [], replyTo: null }, meta: { eventId: `e${n}`, occurredAt: new Date(1_700_000_000_000 + n).toISOString(), actorId: 'u1', correlationId: 'c' } };
    return [`S.chat.c${n % 200}`, JSON.stringify(event), { headers: h }];
  });
  /** As the scan's ageOf: the event's own time, else the stored one. */
  const ageOf = (event, storedNanos) => {
    const own = typeof event?.meta?.occurredAt === 'string' ? Date.parse(event.meta.occurredAt) : NaN;
    return Number.isFinite(own) ? own : storedNanos / 1e6;
  };
  const decoder = new TextDecoder();
  const modes = {
    async iterator() {
      let n = 0;
      await readStream(js, 'S', { lastSeq: total }, (m) => {
        n += ageOf(m.json(), m.info.timestampNanos) > 0 ? 1 : 0;
      });
      return n;
    },
    async sync() {
      let n = 0;
      await readStreamSync(js, 'S', { lastSeq: total }, (m) => {
        n += ageOf(m.json(), m.info.timestampNanos) > 0 ? 1 : 0;
      });
      return n;
    },
    async raw() {
      const inbox = createInbox();
      let n = 0;
      await new Promise((resolve) => {
        const sub = nc.subscribe(inbox, {
          callback: (_err, m) => {
            // Flow control and heartbeats: status messages without a body.
            if (m.data.length === 0) {
              if (m.reply) m.respond();
              return;
            }
            // $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
            const tokens = m.reply.split('.');
            const seq = Number(tokens[tokens.length - 4]);
            n += ageOf(JSON.parse(decoder.decode(m.data)), Number(tokens[tokens.length - 2])) > 0 ? 1 : 0;
            if (seq === total) {
              sub.unsubscribe();
              resolve();
            }
          },
        });
        void jsm.consumers.add('S', { deliver_subject: inbox, ack_policy: 'none', deliver_policy: 'all', flow_control: true, idle_heartbeat: 5_000_000_000, mem_storage: true, inactive_threshold: 60_000_000_000 });
      });
      return n;
    },
  };
  console.log(nats.version, `${total.toLocaleString('en')} events`);
  for (let round = 1; round <= Number(args.rounds); round++) {
    for (const mode of args.modes.split(',')) {
      const cpu = process.cpuUsage();
      const started = performance.now();
      const n = await modes[mode]();
      const ms = performance.now() - started;
      const used = process.cpuUsage(cpu);
      console.log(`round ${round} ${mode}: ${n.toLocaleString('en')} in ${Math.round(ms)} ms, ${Math.round((n / ms) * 1000).toLocaleString('en')}/s, reader CPU ${Math.round(((used.user + used.system) / 1000 / ms) * 100)} %`);
    }
  }
  await nc.close();
} finally {
  await nats.stop();
}
