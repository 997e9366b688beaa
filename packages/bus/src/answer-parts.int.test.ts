import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjects } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { PART_BYTES } from './answer-parts.js';
import { connectBus, type Bus } from './connect.js';
import { requestJson, serveRequests } from './rpc.js';
import { ServiceUnavailableError } from './rpc-failure.js';

/**
 * Answers larger than one NATS message (the server's max_payload, 1 MiB by default) on a real
 * server. The services' own permissions for them are exercised end to end (e2e/profiles.test.ts,
 * the large export).
 */
describe('answers in parts', () => {
  let env: TestEnv;
  let server: Bus;
  let caller: Bus;
  let ns: string;
  const log = createLogger({ service: 'test', level: 'silent' });
  /** An answer of about `bytes` bytes of JSON, with text that is not one repeated byte. */
  const answerOf = (bytes: number) => ({ items: Array.from({ length: Math.ceil(bytes / 64) }, (_, i) => `${i}:`.padEnd(56, 'ü')) });

  beforeAll(async () => {
    env = await createTestEnv();
    ns = env.namespace;
    server = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'parts-server', log });
    caller = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'parts-caller', log });
    serveRequests(server.nc, subjects.api(ns, 'users'), 'users', async (req) => answerOf((req as { bytes: number }).bytes), log, undefined, undefined, subjects.parts(ns, 'users'));
    // The same, from a responder that has no parts prefix.
    serveRequests(server.nc, subjects.api(ns, 'messages'), 'messages', async (req) => answerOf((req as { bytes: number }).bytes), log);
    await server.nc.flush();
  });
  afterAll(async () => {
    await caller?.nc.close();
    await server?.nc.close();
    await env?.cleanup();
  });

  it('answers a small answer in one reply and a 5 MiB one, which NATS would refuse whole, in parts that join to it', async () => {
    const small = await caller.nc.request(subjects.api(ns, 'users'), JSON.stringify({ bytes: 1000 }), { timeout: 5_000 });
    expect(small.headers?.get('Parley-Parts') ?? '').toBe('');
    expect(small.json()).toEqual(answerOf(1000));

    const bytes = 5 * 1024 * 1024;
    expect(bytes).toBeGreaterThan(caller.nc.info!.max_payload);
    const first = await caller.nc.request(subjects.api(ns, 'users'), JSON.stringify({ bytes }), { timeout: 5_000 });
    const count = Number(first.headers?.get('Parley-Parts'));
    expect(count).toBeGreaterThan(bytes / PART_BYTES);
    expect(first.data.length).toBe(PART_BYTES);

    expect(await requestJson(caller, subjects.api(ns, 'users'), { bytes })).toEqual(answerOf(bytes));
    // Just under the limit, one reply.
    const exact = await requestJson<{ items: string[] }>(caller, subjects.api(ns, 'users'), { bytes: PART_BYTES - 1024 });
    expect(exact).toEqual(answerOf(PART_BYTES - 1024));
  });

  it('serves each part once asked for, refuses parts that do not exist, and frees the answer once its last part is read', async () => {
    const first = await caller.nc.request(subjects.api(ns, 'users'), JSON.stringify({ bytes: 3 * PART_BYTES }), { timeout: 5_000 });
    const subject = first.headers!.get('Parley-Parts-Subject');
    const count = Number(first.headers!.get('Parley-Parts'));
    expect(subject.startsWith(`${subjects.parts(ns, 'users')}.`)).toBe(true);
    for (const wrong of ['0', String(count), 'x', '-1']) {
      const refused = await caller.nc.request(subject, wrong, { timeout: 5_000 });
      expect(refused.headers?.get('Nats-Service-Error-Code')).toBe('400');
    }
    const parts = [first.data];
    for (let i = 1; i < count; i++) parts.push((await caller.nc.request(subject, String(i), { timeout: 5_000 })).data);
    expect(JSON.parse(Buffer.concat(parts).toString())).toEqual(answerOf(3 * PART_BYTES));
    // Read to the end: nobody serves it any more.
    await expect(caller.nc.request(subject, '1', { timeout: 2_000 })).rejects.toThrow(/no responders|503|timeout/i);
  });

  it('fails as unavailable, as before, where the responder has no place for parts', async () => {
    await expect(requestJson(caller, subjects.api(ns, 'messages'), { bytes: 2 * 1024 * 1024 })).rejects.toBeInstanceOf(ServiceUnavailableError);
  });
});
