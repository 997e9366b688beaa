#!/usr/bin/env node
// A NATS request's CPU in the requesting process, with nats.js's stock resolver and with
// Parley's (packages/bus/src/request-patch.ts: no throw-away Error per answered request).
//
// Starts a private nats-server (`--bin`), an echo responder on its own connection, and sends
// `--requests` requests of 200 bytes, 64 in flight, from another connection in this process
// (`noAsyncTraces`, as connectBus sets it), the two resolvers in turns for `--rounds` rounds.
// Prints the client's CPU microseconds (process.cpuUsage, responder included) and the wall
// microseconds per request, as JSON. Needs the built packages (`npx turbo run build`).
//
//   node bench/request-cost.mjs --requests 50000 --rounds 3
import { parseArgs } from 'node:util';
import { RequestOne } from '@nats-io/nats-core/internal';
import { answerRequestsWithoutThrowAwayErrors } from '../packages/bus/dist/request-patch.js';
import { startPrivateNats } from './lib/private-nats.mjs';

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string', default: '/usr/sbin/nats-server' },
    requests: { type: 'string', default: '50000' },
    rounds: { type: 'string', default: '3' },
  },
});
const requests = Number(args.requests);
const stock = RequestOne.prototype.resolver;
if (!answerRequestsWithoutThrowAwayErrors()) throw new Error('the patch does not apply to this nats.js');
const patched = RequestOne.prototype.resolver;

const server = await startPrivateNats(args.bin, 'request-cost');
try {
  const responder = await server.connect({ noAsyncTraces: true });
  const requester = await server.connect({ noAsyncTraces: true });
  responder.subscribe('echo', { callback: (_err, msg) => void msg.respond(msg.data) });
  await responder.flush();
  const payload = new TextEncoder().encode('x'.repeat(200));
  const round = async (n) => {
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next++ < n) await requester.request('echo', payload, { timeout: 5_000 });
      }),
    );
    const cpu = process.cpuUsage(cpuBefore);
    return { cpuMicrosPerRequest: Math.round(((cpu.user + cpu.system) / n) * 100) / 100, wallMicrosPerRequest: Math.round(((performance.now() - started) * 1000 * 100) / n) / 100 };
  };
  await round(Math.min(requests, 20_000)); // warm the JIT
  const results = [];
  for (let r = 0; r < Number(args.rounds); r++) {
    for (const [resolver, fn] of [['stock', stock], ['patched', patched]]) {
      RequestOne.prototype.resolver = fn;
      results.push({ resolver, ...(await round(requests)) });
    }
  }
  console.log(JSON.stringify({ server: server.version, requests, results }, null, 2));
  await requester.close();
  await responder.close();
} finally {
  await server.stop();
}
