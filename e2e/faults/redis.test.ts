import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, runLoad } from './harness/client.js';
import { Scenario } from './harness/scenario.js';
import { sleep } from './harness/servers.js';

/** Per request while Redis is dead or frozen: a correctness bound (no hang), not a benchmark. */
const MAX_REQUEST_MS = 2_000;

/**
 * Scenario 5 (docs/architecture.md#promises: Redis is a cache, never the only copy): Redis frozen (SIGSTOP) and then
 * killed while clients send messages and read profiles and chat lists. Every answer stays correct
 * and comes within a bounded delay; a profile changed while Redis could not be told is never served
 * stale once Redis is back.
 */
describe('Redis frozen and killed under load', () => {
  let scenario: Scenario;
  const timings: { path: string; ms: number; ok: boolean }[] = [];

  beforeAll(async () => {
    scenario = await Scenario.start({ gateways: 1, people: 4 });
  });
  afterAll(async () => {
    await scenario?.stop();
  });

  /** user1 reads user0's profile (a cached route) and expects `bio`; timed and recorded. */
  async function readBio(expected: string): Promise<void> {
    const [owner, reader] = scenario.accounts;
    for (const path of [`/api/v1/users/${owner!.id}`, '/api/v1/chats']) {
      const started = performance.now();
      const answer = await api(scenario.baseUrl, 'GET', path, reader!.accessToken);
      const ok = answer.status === 200 && (path === '/api/v1/chats' ? Array.isArray(answer.body.items) && answer.body.items.length === 2 : answer.body.bio === expected);
      timings.push({ path, ms: performance.now() - started, ok });
    }
  }

  async function setBio(bio: string): Promise<void> {
    const started = performance.now();
    const answer = await api(scenario.baseUrl, 'PATCH', '/api/v1/users/me', scenario.accounts[0]!.accessToken, { bio });
    timings.push({ path: 'PATCH /users/me', ms: performance.now() - started, ok: answer.status === 200 && answer.body.bio === bio });
  }

  it('answers correctly, in bounded time, and never stale, while Redis freezes and dies', async () => {
    const signal = { stop: false };
    const load = runLoad(scenario.clients, 60, 120_000, signal);
    await setBio('before');
    for (let i = 0; i < 3; i++) await readBio('before'); // cached now

    // Frozen: commands hang until the client's own timeout; the change cannot invalidate the entry.
    scenario.servers.redis.pause();
    await setBio('while frozen');
    for (let i = 0; i < 3; i++) await readBio('while frozen');
    scenario.servers.redis.resume();
    await sleep(1_000);
    // Back: the entry cached before the freeze must not come back.
    for (let i = 0; i < 5; i++) await readBio('while frozen');

    await scenario.servers.redis.kill('SIGKILL');
    await setBio('while dead');
    for (let i = 0; i < 3; i++) await readBio('while dead');
    await scenario.servers.redis.start();
    await sleep(2_000);
    await setBio('after');
    for (let i = 0; i < 5; i++) await readBio('after');

    signal.stop = true;
    const sent = await load;
    const verdict = await scenario.settleAndCheck();
    const slowest = Math.max(...timings.map((t) => t.ms));
    console.log('redis freeze/kill:', { sent, ...verdict.stats, requests: timings.length, slowestMs: Math.round(slowest) });
    expect(verdict.violations, scenario.logs()).toEqual([]);
    expect(timings.filter((t) => !t.ok)).toEqual([]);
    expect(timings.filter((t) => t.ms >= MAX_REQUEST_MS)).toEqual([]);
    // And the cache is in use again: the last reads were hits.
    const metrics = await scenario.users.metrics();
    expect(Number(/cache_requests_total\{[^}]*operation="get"[^}]*outcome="hit"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeGreaterThan(0);
    for (const service of scenario.services) expect(service.unexpectedExits).toEqual([]);
  });
});
