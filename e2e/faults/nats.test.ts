import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoad } from './harness/client.js';
import { Scenario } from './harness/scenario.js';
import { sleep } from './harness/servers.js';

/** How long NATS stays frozen; 30 s as issue 10 asks (FAULT_PAUSE_SECONDS shortens it locally). */
const PAUSE_MS = Number(process.env.FAULT_PAUSE_SECONDS ?? 30) * 1000;

/**
 * Scenario 3 (promise 1, docs/architecture.md#promises): JetStream is the source of truth, so while NATS is gone no send
 * may be acknowledged, and once it is back nothing acknowledged may be missing. Clients keep sending
 * (open loop) the whole time and retry what was not acked, as real ones do.
 */
describe('NATS killed, restarted and frozen under load', () => {
  let scenario: Scenario;

  beforeAll(async () => {
    scenario = await Scenario.start({ gateways: 2, people: 6 });
  });
  afterAll(async () => {
    await scenario?.stop();
  });

  it('acks nothing it did not store when NATS is SIGKILLed mid-burst and restarted', async () => {
    const signal = { stop: false };
    const load = runLoad(scenario.clients, 200, 60_000, signal);
    await sleep(2_000);
    await scenario.servers.nats.kill('SIGKILL');
    const ackedAtKill = scenario.history.acked;
    await sleep(3_000);
    const ackedWhileDown = scenario.history.acked - ackedAtKill;
    await scenario.servers.nats.start();
    await sleep(4_000);
    signal.stop = true;
    const sent = await load;

    const verdict = await scenario.settleAndCheck();
    console.log('nats kill:', { sent, ...verdict.stats, ackedWhileDown });
    expect(verdict.violations, scenario.logs()).toEqual([]);
    expect(verdict.stats.acked).toBe(sent);
    // Acks in the down window can only be those already on the wire when it died.
    expect(ackedWhileDown).toBeLessThan(50);
    for (const service of scenario.services) expect(service.unexpectedExits).toEqual([]);
  });

  it('answers errors, never a false ack, while NATS is frozen, with gateway memory bounded', async () => {
    const signal = { stop: false };
    const load = runLoad(scenario.clients, 100, PAUSE_MS + 20_000, signal);
    await sleep(2_000);
    const rssBefore = Math.max(...(await Promise.all(scenario.gateways.map((g) => g.rssBytes()))));
    const erroredBefore = scenario.history.check(new Map(), new Map()).stats.erroredSends;
    scenario.servers.nats.pause();
    let rssMax = rssBefore;
    const frozenUntil = Date.now() + PAUSE_MS;
    while (Date.now() < frozenUntil) {
      await sleep(1_000);
      rssMax = Math.max(rssMax, ...(await Promise.all(scenario.gateways.map((g) => g.rssBytes()))));
    }
    const erroredDuring = scenario.history.check(new Map(), new Map()).stats.erroredSends - erroredBefore;
    scenario.servers.nats.resume();
    await sleep(5_000);
    signal.stop = true;
    const sent = await load;

    const verdict = await scenario.settleAndCheck(120_000);
    console.log('nats pause:', { sent, ...verdict.stats, erroredDuring, rssBeforeMiB: rssBefore >> 20, rssMaxMiB: rssMax >> 20 });
    expect(verdict.violations, scenario.logs()).toEqual([]);
    // The clients were told (an `unavailable` error), not left hanging or falsely acked...
    expect(erroredDuring).toBeGreaterThan(0);
    // ...and holding 30 s of sends did not make the gateways balloon: a bound, not a benchmark.
    expect(rssMax - rssBefore).toBeLessThan(150 * 1024 * 1024);
    for (const service of scenario.services) expect(service.unexpectedExits).toEqual([]);
  });
});
