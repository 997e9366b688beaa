import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoad } from './harness/client.js';
import { metricSum } from './harness/metrics.js';
import { Scenario } from './harness/scenario.js';
import { sleep } from './harness/servers.js';
import { newService } from './harness/services.js';

const STEPS = ['received', 'beforeCommit', 'afterCommit'] as const;

/**
 * Scenarios 1 and 2 (promise 2, docs/architecture.md#promises): the messages projector dies (SIGKILL) at every step of
 * a batch, again and again, while clients keep sending; and a replica slower than the ack wait leads
 * while another stands by. Each event must end up applied exactly once, in order.
 */
describe('projectors killed and slowed under load', () => {
  let scenario: Scenario;

  beforeAll(async () => {
    // A small resume window, so that clients coming back after a crash get `reset` and reload.
    scenario = await Scenario.start({ gateways: 1, people: 6, env: { PROJECTOR_ACK_WAIT_MS: '1000', WS_RESUME_MAX_EVENTS: '50' } });
  });
  afterAll(async () => {
    await scenario?.stop();
  });

  it('applies every event once when killed between receive, apply, commit and ack, nine times over', async () => {
    const signal = { stop: false };
    const load = runLoad(scenario.clients, 100, 120_000, signal);
    await scenario.messages.kill('SIGKILL');
    const crashes: string[] = [];
    for (let round = 0; round < 9; round++) {
      const step = STEPS[round % STEPS.length]!;
      // Armed after it has done some real work; the next batch to reach `step` kills it.
      await scenario.messages.start({ PARLEY_FAULT: `projector-crash:${step}:${500 + Math.floor(Math.random() * 1500)}` }, { ready: false });
      const exit = await Promise.race([scenario.messages.waitExit(), sleep(20_000).then(() => 'alive')]);
      crashes.push(`${step}:${Array.isArray(exit) ? String(exit[1] ?? exit[0]) : exit}`);
    }
    await scenario.messages.start();
    await sleep(2_000);
    signal.stop = true;
    const sent = await load;

    const verdict = await scenario.settleAndCheck(120_000);
    console.log('projector crashes:', { sent, ...verdict.stats, crashes, reconnects: scenario.clients.reduce((n, c) => n + c.connects - 1, 0) });
    expect(crashes.every((c) => c.endsWith(':SIGKILL'))).toBe(true);
    expect(verdict.violations, scenario.logs()).toEqual([]);
    expect(verdict.stats.acked).toBe(sent);
    // Redelivered batches that had been committed were recognised and skipped, not applied again.
    expect(metricSum(await scenario.messages.metrics(), 'projector_poison_messages_total')).toBe(0);
  });

  it('stays exactly once with a leader slower than the ack wait and a standby taking over', async () => {
    // The slow replica must lead: start it alone, then the normal one as the standby.
    await scenario.messages.kill('SIGTERM');
    const slow = await newService('messages', scenario.env, 'messages-slow');
    scenario.extraServices.push(slow);
    await slow.start({ PARLEY_FAULT: 'projector-slow-commit:1500' });
    await scenario.messages.start();

    const signal = { stop: false };
    const load = runLoad(scenario.clients, 50, 60_000, signal);
    await sleep(8_000);
    const slowApplied = metricSum(await slow.metrics(), 'projector_events_total', 'outcome="applied"');
    await slow.kill('SIGKILL');
    await sleep(4_000);
    signal.stop = true;
    const sent = await load;

    const verdict = await scenario.settleAndCheck(120_000);
    const standby = await scenario.messages.metrics();
    console.log('slow leader:', { sent, ...verdict.stats, slowApplied, standbyApplied: metricSum(standby, 'projector_events_total', 'outcome="applied"'), standbySkipped: metricSum(standby, 'projector_events_total', 'outcome="skipped"') });
    expect(verdict.violations, scenario.logs()).toEqual([]);
    // Both replicas did part of the work: the slow one led, the standby took over after its death.
    expect(slowApplied).toBeGreaterThan(0);
    expect(metricSum(standby, 'projector_events_total', 'outcome="applied"')).toBeGreaterThan(0);
  });

  it('a client that comes back to a reset while the projection lags reloads every message up to the reset', async () => {
    // History trails the stream by seconds: each commit takes 3 s.
    await scenario.messages.kill('SIGTERM');
    await scenario.messages.start({ PARLEY_FAULT: 'projector-slow-commit:3000' });
    const away = scenario.clients[3]!;
    away.goOffline();
    const others = scenario.clients.filter((c) => c !== away);
    const sent = await runLoad(others, 100, 3_000);
    await away.goOnline();

    const verdict = await scenario.settleAndCheck(120_000);
    console.log('reset while the projection lags:', { sent, ...verdict.stats, reloadWaits: away.reloadWaits });
    expect(verdict.violations, scenario.logs()).toEqual([]);
    // The race happened: history was older than the reset's seq, and the client waited for it.
    expect(away.reloadWaits).toBeGreaterThan(0);
  });
});
