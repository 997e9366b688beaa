import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errors, type NatsConnection } from '@nats-io/transport-node';
import { createLogger } from '@parley/log';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { connectBus, type Bus } from './connect.js';
import { answerRequestsWithoutThrowAwayErrors } from './request-patch.js';

/**
 * The module request.js takes RequestError from at each use: replacing its export counts the
 * errors built for requests (an absolute path, since the package exports only its entry points).
 */
const requestErrors = createRequire(import.meta.url)(createRequire(import.meta.url).resolve('@nats-io/nats-core').replace(/mod\.js$/, 'errors.js')) as { RequestError: typeof errors.RequestError };

/** Requests in the connection's table: an answered or failed one must leave it. */
const pending = (nc: NatsConnection) => (nc as unknown as { protocol: { muxSubscriptions: { size(): number } } }).protocol.muxSubscriptions.size();

describe('nats.js requests without a throw-away Error (request-patch.ts)', () => {
  let env: TestEnv;
  let bus: Bus;
  const built = { count: 0 };
  const Stock = requestErrors.RequestError;

  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'request-patch', log: createLogger({ service: 'test', level: 'silent' }) });
    requestErrors.RequestError = class Counted extends Stock {
      constructor(...args: ConstructorParameters<typeof Stock>) {
        super(...args);
        built.count += 1;
      }
    };
  });
  afterAll(async () => {
    requestErrors.RequestError = Stock;
    await bus?.nc.close();
    await env?.cleanup();
  });

  it('applies to the installed nats.js (an upgrade that changes the resolver fails here, to be looked at)', () => {
    expect(answerRequestsWithoutThrowAwayErrors()).toBe(true);
  });

  it('answers every request with its own reply, builds no Error for it, and leaves nothing in the table', async () => {
    const subject = `${env.namespace}.patch.echo`;
    const sub = bus.nc.subscribe(subject, { callback: (_err, msg) => void msg.respond(msg.data) });
    await bus.nc.flush();
    built.count = 0;
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => bus.nc.request(subject, `n${i}`, { timeout: 5_000 })));
    expect(replies.map((m) => m.string())).toEqual(Array.from({ length: 200 }, (_, i) => `n${i}`));
    expect(built.count).toBe(0);
    expect(pending(bus.nc)).toBe(0);
    sub.unsubscribe();
  });

  it('still rejects a request nobody answers in time with a TimeoutError, and removes it (the library\'s own failure path)', async () => {
    const subject = `${env.namespace}.patch.silent`;
    const sub = bus.nc.subscribe(subject, { callback: () => {} });
    await bus.nc.flush();
    built.count = 0;
    await expect(bus.nc.request(subject, 'x', { timeout: 200 })).rejects.toBeInstanceOf(errors.TimeoutError);
    // The probe works: the library's path still builds its 'cancelled' error.
    expect(built.count).toBeGreaterThan(0);
    expect(pending(bus.nc)).toBe(0);
    sub.unsubscribe();
  });

  it('still rejects a request without responders as no responders', async () => {
    const failure = await bus.nc.request(`${env.namespace}.patch.nobody`, 'x', { timeout: 2_000 }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(errors.RequestError);
    expect((failure as InstanceType<typeof errors.RequestError>).isNoResponders()).toBe(true);
    expect(pending(bus.nc)).toBe(0);
  });
});
