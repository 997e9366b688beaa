#!/usr/bin/env node
// What one stream erasure costs on a NATS server version, and what pacing does to a run of them.
//
// Starts a private nats-server (`--bin`), stores `--messages` events of about 440 bytes on 200
// subjects, then, in alternation for `--rounds` rounds, erases `--count` distinct sequences:
// - `single`: one request at a time, each timed (what one erasure holds the stream for);
// - `four`: four always in flight, each timed (what deleteStreamSequences did before it paced;
//   the server does them in turn, or side by side);
// - `paced`: deleteStreamSequences from @parley/bus (rounds that grow while quick, one at a time
//   with a rest after slow ones), timed as a whole.
//
//   node bench/erase-pace.mjs --bin /usr/sbin/nats-server --count 5000
//   node bench/erase-pace.mjs --bin /opt/nats-2.15/usr/sbin/nats-server --count 200 --modes single,four
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { deleteStreamSequences, eachConcurrently } from '@parley/bus';
import { quantile, seedStream, startPrivateNats } from './lib/private-nats.mjs';

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string', default: '/usr/sbin/nats-server' },
    messages: { type: 'string', default: '200000' },
    count: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'single,four,paced' },
  },
});
const count = Number(args.count);
const nats = await startPrivateNats(args.bin, 'erase-pace');
try {
  const nc = await nats.connect();
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'E', subjects: ['E.>'] });
  await seedStream(jetstream(nc), Number(args.messages), (n) => [`E.chat.${n % 200}`, `BODY${String(n).padStart(9, '0')}${'x'.repeat(380)}`]);
  // Each run erases its own sequences, downwards from the top: none is erased twice.
  let top = Number(args.messages) - 1;
  const take = () => Array.from({ length: count }, () => top--);
  const timedEach = async (seqs, inFlight) => {
    const each = [];
    await eachConcurrently(seqs, inFlight, async (seq) => {
      const started = performance.now();
      await jsm.streams.deleteMessage('E', seq, true);
      each.push(performance.now() - started);
    });
    return each.sort((a, b) => a - b);
  };
  const modes = {
    single: (seqs) => timedEach(seqs, 1),
    four: (seqs) => timedEach(seqs, 4),
    paced: (seqs) => deleteStreamSequences(jsm, 'E', seqs, 4),
  };
  console.log(nats.version);
  for (let round = 1; round <= Number(args.rounds); round++) {
    for (const mode of args.modes.split(',')) {
      const started = performance.now();
      const each = await modes[mode](take());
      const ms = performance.now() - started;
      const detail = Array.isArray(each) ? `, each p50 ${quantile(each, 0.5).toFixed(1)} / max ${each.at(-1).toFixed(1)} ms` : '';
      console.log(`round ${round} ${mode}: ${count} erasures in ${Math.round(ms)} ms${detail}`);
    }
  }
  await nc.close();
} finally {
  await nats.stop();
}
