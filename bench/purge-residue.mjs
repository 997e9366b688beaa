#!/usr/bin/env node
// Which purged message bodies a JetStream purge leaves in the stream's block files.
//
// A retention pass drops the chats stream's expired part with a purge up to the first fresh event
// (docs/retention.md). A purge drops whole blocks with their files; in the block it ends in, it
// only marks the messages below its point gone, and rewrites the block without them only when
// enough of the block is freed. This starts a private nats-server (`--bin`), stores `--messages`
// events whose bodies carry their number, purges below each `--below` point (one request, or
// steps of `--step`) in a fresh stream each, then reads the block files for purged bodies.
// `--erase-tail N` first erases (deletes with overwrite) the N messages below the point, as the
// retention pass does for the block its purge ends in, `--concurrency` requests in flight
// (`--delete-only`: deletes without the overwrite).
//
//   node bench/purge-residue.mjs --bin /usr/sbin/nats-server --messages 400000 --below 370001,385001,390001,395001
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { deleteStreamSequences } from '@parley/bus';
import { seedStream, startPrivateNats } from './lib/private-nats.mjs';

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string', default: '/usr/sbin/nats-server' },
    messages: { type: 'string', default: '400000' },
    below: { type: 'string', default: '370001,385001,390001,395001' },
    step: { type: 'string', default: '0' },
    'erase-tail': { type: 'string', default: '0' },
    concurrency: { type: 'string', default: '4' },
    'delete-only': { type: 'boolean', default: false },
  },
});
const messages = Number(args.messages);
const step = Number(args.step);

const nats = await startPrivateNats(args.bin, 'purge-residue');
try {
  const nc = await nats.connect();
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const results = [];
  for (const [i, below] of args.below.split(',').map(Number).entries()) {
    const stream = `residue${i}`;
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    // About 400 bytes, as a chat event, on 200 subjects, as chats.
    await seedStream(js, messages, (n) => [`${stream}.chat.${n % 200}`, `BODY${String(n).padStart(9, '0')}${'x'.repeat(380)}`]);
    const eraseStart = performance.now();
    const tail = Array.from({ length: Math.min(Number(args['erase-tail']), below - 1) }, (_, k) => below - 1 - k);
    const erased = await deleteStreamSequences(jsm, stream, tail, Number(args.concurrency), !args['delete-only']);
    const eraseMs = Math.round(performance.now() - eraseStart);
    let purged = 0;
    for (let upTo = step > 0 ? Math.min(1 + step, below) : below; ; upTo = Math.min(upTo + step, below)) {
      purged += (await jsm.streams.purge(stream, { seq: upTo })).purged;
      if (upTo >= below) break;
    }
    const msgs = path.join(nats.dir, 'jetstream', '$G', 'streams', stream, 'msgs');
    const blocks = readdirSync(msgs).filter((f) => f.endsWith('.blk'));
    const left = [];
    for (const block of blocks) {
      for (const m of readFileSync(path.join(msgs, block)).toString('latin1').matchAll(/BODY(\d{9})/g)) {
        if (Number(m[1]) < below) left.push(Number(m[1]));
      }
    }
    left.sort((a, b) => a - b);
    results.push({ below, erased, eraseMs, purged, blocksLeft: blocks.length, purgedBodiesLeft: left.length, range: left.length ? [left[0], left.at(-1)] : null });
    await jsm.streams.delete(stream);
  }
  await nc.close();
  console.log(JSON.stringify({ version: nats.version, messages, step, results }, null, 2));
} finally {
  await nats.stop();
}
