#!/usr/bin/env node
// What finding whether a user holds presence keys costs the NATS server, three ways.
//
// When a user's first socket on a gateway opens (or the last one closes), the gateway asks whether
// another gateway holds a key of the user in the presence bucket (services/gateway/src/ws/presence.ts).
// This starts a private nats-server (`--bin`), fills a KV bucket like the presence one (TTL 1 h,
// history 1) with `--keys` keys `<user>.<gateway>` over two gateways, then asks about `--calls`
// users, 20 at a time, by `kv.keys('<user>.*')` (an ordered consumer: create, info, deliveries,
// delete), by one STREAM.INFO request with `subjects_filter` `<user>.*` (the gateway until
// 2026-12-07), and by a STREAM.MSG.GET of the one key `<user>.<gateway>` (the gateway since: one
// such get per other gateway), in turns, and prints the server's CPU milliseconds and the wall
// milliseconds per call.
//
//   node bench/presence-count.mjs --keys 20000
import { parseArgs } from 'node:util';
import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import { startPrivateNats } from './lib/private-nats.mjs';
import { cpuSeconds } from './lib/proc.mjs';

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string', default: '/usr/sbin/nats-server' },
    keys: { type: 'string', default: '20000' },
    calls: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '2' },
  },
});
const keys = Number(args.keys);
const calls = Number(args.calls);
const server = await startPrivateNats(args.bin, 'presence-count');
try {
  const nc = await server.connect();
  const kv = await new Kvm(nc).create('presence', { ttl: 3_600_000, history: 1 });
  const jsm = await jetstreamManager(nc);
  for (let from = 0; from < keys; from += 500) {
    await Promise.all(Array.from({ length: Math.min(500, keys - from) }, (_, i) => kv.put(`u${from + i}.g${(from + i) % 2}`, '1')));
  }
  const ways = {
    'kv.keys': async (user) => {
      let n = 0;
      for await (const _ of await kv.keys(`${user}.*`)) n += 1;
      return n;
    },
    'stream info': async (user) => Object.keys((await jsm.streams.info('KV_presence', { subjects_filter: `$KV.presence.${user}.*` })).state.subjects ?? {}).length,
    // What the gateway does since 2026-12-07: one STREAM.MSG.GET of `<user>.<gateway>` per other
    // gateway (here the one gateway that holds the key; a second for the other gateway would cost
    // the same again).
    'msg get': async (user) => ((await jsm.streams.getMessage('KV_presence', { last_by_subj: `$KV.presence.${user}.g${Number(user.slice(1)) % 2}` })) ? 1 : 0),
  };
  const results = [];
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const [way, count] of Object.entries(ways)) {
      const cpuBefore = cpuSeconds(server.pid);
      const started = performance.now();
      let found = 0;
      await Promise.all(
        Array.from({ length: 20 }, async (_, lane) => {
          for (let i = lane; i < calls; i += 20) {
            const n = await count(`u${(i * 37) % keys}`);
            found += n;
          }
        }),
      );
      if (found !== calls) throw new Error(`${way} found ${found} keys for ${calls} users, each of whom has one`);
      results.push({ way, keys, calls, serverCpuMsPerCount: Math.round(((cpuSeconds(server.pid) - cpuBefore) * 1000 * 100) / calls) / 100, wallMsPerCount: Math.round(((performance.now() - started) * 100) / calls) / 100 });
    }
  }
  console.log(JSON.stringify({ server: server.version, results }, null, 2));
  await nc.close();
} finally {
  await server.stop();
}
