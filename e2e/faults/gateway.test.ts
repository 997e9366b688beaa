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
    // Half the clients start on each gateway. Killing them in turn moves everybody back and forth:
    // 4, then 8, then 8 sockets cut mid-send.
    for (const gateway of [scenario.gateways[0]!, scenario.gateways[1]!, scenario.gateways[0]!]) {
      await sleep(2_500);
      await gateway.kill('SIGKILL');
      await sleep(1_500);
      await gateway.start();
    }
    await sleep(2_000);
    signal.stop = true;
    const sent = await load;

    const verdict = await scenario.settleAndCheck();
    const reconnects = scenario.clients.reduce((n, c) => n + c.connects - 1, 0);
    const resent = scenario.clients.reduce((n, c) => n + c.resent, 0);
    console.log('gateway kill:', { sent, ...verdict.stats, reconnects, resent });
    expect(verdict.violations, scenario.logs()).toEqual([]);
    expect(verdict.stats.acked).toBe(sent);
    // The faults did happen to the clients: each kill cut sockets that had to reconnect.
    expect(reconnects).toBeGreaterThanOrEqual(4 + 8 + 8);
  });
});
