import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, runLoad } from './harness/client.js';
import { metricSum } from './harness/metrics.js';
import { Scenario } from './harness/scenario.js';
import { sleep } from './harness/servers.js';

const OUTAGE_MS = Number(process.env.FAULT_PAUSE_SECONDS ?? 30) * 1000;

/**
 * Scenario 4 (promise 1, docs/architecture.md#promises): the ack needs JetStream only, so with PostgreSQL down for 30 s
 * clients keep sending and keep getting acks; history answers 503 meanwhile; when the database is
 * back the projectors catch up with everything, and no event was set aside as poison.
 */
describe('PostgreSQL down for 30 s under load', () => {
  let scenario: Scenario;

  beforeAll(async () => {
    scenario = await Scenario.start({ gateways: 1, people: 6 });
  });
  afterAll(async () => {
    await scenario?.stop();
  });

  it('keeps acknowledging sends, then projects every one of them', async () => {
    const signal = { stop: false };
    const load = runLoad(scenario.clients, 100, OUTAGE_MS + 30_000, signal);
    await sleep(2_000);
    await scenario.servers.postgres.stop();
    const ackedAtStop = scenario.history.acked;
    await sleep(OUTAGE_MS / 2);
    const chatId = scenario.clients[0]!.chats[0]!;
    const during = await api(scenario.baseUrl, 'GET', `/api/v1/chats/${chatId}/messages`, scenario.accounts[0]!.accessToken);
    await sleep(OUTAGE_MS / 2);
    const ackedDuringOutage = scenario.history.acked - ackedAtStop;
    await scenario.servers.postgres.start();
    await scenario.servers.waitForPostgres();
    await sleep(5_000);
    signal.stop = true;
    const sent = await load;

    const verdict = await scenario.settleAndCheck(120_000);
    console.log('postgres down:', { sent, ...verdict.stats, ackedDuringOutage, historyDuring: during.status });
    expect(verdict.violations, scenario.logs()).toEqual([]);
    // Sends went on being acknowledged through the outage: about the rate times its length.
    expect(ackedDuringOutage).toBeGreaterThan((OUTAGE_MS / 1000) * 100 * 0.5);
    expect(during.status).toBe(503);
    expect(during.body.error.code).toBe('unavailable');
    for (const service of [scenario.users, scenario.messages]) {
      expect(metricSum(await service.metrics(), 'projector_poison_messages_total')).toBe(0);
    }
    for (const service of scenario.services) expect(service.unexpectedExits).toEqual([]);
  });
});
