#!/usr/bin/env node
// How long a JetStream purge holds a stream's publishes, on a given nats-server binary.
//
// A retention pass ends with one purge of the chats stream up to the first fresh event
// (packages/bus/src/compact.ts); every live send waits behind it (docs/performance.md, Retention).
// This starts a private nats-server (`--bin`, Debian's by default), fills one stream with
// `--messages` events of `--size` bytes on `--subjects` subjects, then publishes on its own
// connection at `--rate` a second and purges everything seeded in one request. It prints the
// purge's duration and send→ack (publish to PubAck) before and during it, as JSON.
// `--chunk N` purges in steps of N sequences instead, resting between steps as long as the last
// one took, as the retention pass does with `RETENTION_PURGE_CHUNK`; it prints each step's length.
//
//   node bench/purge-hold.mjs --bin /usr/sbin/nats-server --messages 1000000
//   node bench/purge-hold.mjs --bin /usr/sbin/nats-server --messages 1000000 --chunk 20000
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { quantile, seedStream, startPrivateNats } from './lib/private-nats.mjs';
import { sleep } from './lib/system.mjs';

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string', default: '/usr/sbin/nats-server' },
    messages: { type: 'string', default: '1000000' },
    size: { type: 'string', default: '400' },
    subjects: { type: 'string', default: '200' },
    rate: { type: 'string', default: '500' },
    runs: { type: 'string', default: '1' },
    chunk: { type: 'string', default: '0' },
  },
});
const messages = Number(args.messages);
const size = Number(args.size);
const subjects = Number(args.subjects);
const rate = Number(args.rate);
const chunk = Number(args.chunk);

const round = (x) => (x === null ? null : Math.round(x * 10) / 10);

const nats = await startPrivateNats(args.bin, 'purge-hold');
const results = [];
try {
  const seeder = await nats.connect();
  const live = await nats.connect();
  const jsm = await jetstreamManager(seeder);
  const js = jetstream(seeder);
  const liveJs = jetstream(live);
  const body = new Uint8Array(size).fill(120);

  for (let run = 0; run < Number(args.runs); run += 1) {
    const stream = `hold${run}`;
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    const seedStart = Date.now();
    await seedStream(js, messages, (n) => [`${stream}.chat.${n % subjects}`, body]);
    const seedSeconds = (Date.now() - seedStart) / 1000;
    const firstFresh = (await jsm.streams.info(stream)).state.last_seq + 1;

    // Live publishes at `rate`, open loop (a send is due every 1/rate s whatever the last one did).
    const samples = [];
    let purgeWindow = null;
    let stop = false;
    const publisher = (async () => {
      const started = performance.now();
      let n = 0;
      const pending = [];
      while (!stop) {
        const due = started + (n * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        n += 1;
        // From the schedule when late (the wait behind a purge counts), from the send when a timer
        // fired early (they round to whole milliseconds).
        const from = Math.min(due, performance.now());
        pending.push(liveJs.publish(`${stream}.live.${n % 10}`, body).then(() => samples.push({ at: due, ms: performance.now() - from })));
      }
      await Promise.all(pending);
    })();
    await sleep(3_000);
    const purgeStart = performance.now();
    let purged = 0;
    const steps = [];
    for (let upTo = chunk > 0 ? Math.min(1 + chunk, firstFresh) : firstFresh; ; upTo = Math.min(upTo + chunk, firstFresh)) {
      const stepStart = performance.now();
      purged += (await jsm.streams.purge(stream, { seq: upTo })).purged;
      steps.push(performance.now() - stepStart);
      if (upTo >= firstFresh) break;
      await sleep(steps.at(-1));
    }
    purgeWindow = [purgeStart, performance.now()];
    steps.sort((a, b) => a - b);
    await sleep(2_000);
    stop = true;
    await publisher;

    const before = samples.filter((s) => s.at < purgeWindow[0]).map((s) => s.ms).sort((a, b) => a - b);
    const during = samples.filter((s) => s.at >= purgeWindow[0] && s.at <= purgeWindow[1]).map((s) => s.ms).sort((a, b) => a - b);
    const all = samples.map((s) => s.ms).sort((a, b) => a - b);
    results.push({
      run: run + 1,
      seedSeconds: round(seedSeconds),
      purged,
      purgeMs: round(purgeWindow[1] - purgeWindow[0]),
      steps: { count: steps.length, p50: round(quantile(steps, 0.5)), p90: round(quantile(steps, 0.9)), max: round(steps.at(-1)) },
      sendAckMs: {
        before: { p50: round(quantile(before, 0.5)), p99: round(quantile(before, 0.99)) },
        duringPurge: { sends: during.length, p50: round(quantile(during, 0.5)), p99: round(quantile(during, 0.99)), max: round(during.at(-1) ?? null) },
        wholeRun: { sends: all.length, p99: round(quantile(all, 0.99)), max: round(all.at(-1) ?? null) },
      },
    });
    await jsm.streams.delete(stream);
  }
  await live.close();
  await seeder.close();
  console.log(JSON.stringify({ version: nats.version, messages, size, subjects, rate, chunk, results }, null, 2));
} finally {
  await nats.stop();
}
