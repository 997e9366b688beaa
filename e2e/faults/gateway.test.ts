import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoad } from './harness/client.js';
import { Scenario } from './harness/scenario.js';
import { sleep } from './harness/servers.js';

/**
 * Scenario 6 (promises 1 and 3, docs/architecture.md#promises): a gateway SIGKILLed with sends in flight. Its clients
 * reconnect to the other gateway, send their unacknowledged messages again with the same
 * clientMsgId and resume from their cursors: every message exactly once, in order, for everyone.
 */
describe('a gateway killed with messages in flight', () => {
  let scenario: Scenario;

  beforeAll(async () => {
    scenario = await Scenario.start({ gateways: 2, people: 8 });
  });
  afterAll(async () => {
    await scenario?.stop();
  });

  it('loses and doubles nothing: clients move to the other gateway, retry and resume', async () => {
    const signal = { stop: false };
    const load = runLoad(scenario.clients, 150, 60_000, signal);
    // Half the clients start on each gateway. Killing them in turn moves them back and forth (4,
    // then up to 8, then up to 8 sockets cut mid-send: a client that reconnected to a gateway
    // restarted meanwhile is not on the next one killed, so each kill counts the sockets it cuts).
    let cut = 0;
    const cutByKill: number[] = [];
    for (const index of [0, 1, 0]) {
      await sleep(2_500);
      const on = scenario.clients.filter((c) => c.onGateway === index).length;
      cutByKill.push(on);
      cut += on;
      await scenario.gateways[index]!.kill('SIGKILL');
      await sleep(1_500);
      await scenario.gateways[index]!.start();
    }
    await sleep(2_000);
    signal.stop = true;
    const sent = await load;

    const verdict = await scenario.settleAndCheck();
    const reconnects = scenario.clients.reduce((n, c) => n + c.connects - 1, 0);
    const resent = scenario.clients.reduce((n, c) => n + c.resent, 0);
    console.log('gateway kill:', { sent, ...verdict.stats, reconnects, resent, cutByKill });
    expect(verdict.violations, scenario.logs()).toEqual([]);
    expect(verdict.stats.acked).toBe(sent);
    // The faults did happen to the clients: each kill cut sockets, and every cut socket reconnected.
    expect(Math.min(...cutByKill), String(cutByKill)).toBeGreaterThan(0);
    expect(cutByKill[0]).toBe(4);
    expect(reconnects).toBeGreaterThanOrEqual(cut);
  });
});
