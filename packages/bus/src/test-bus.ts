import { afterAll, beforeAll } from 'vitest';
import { createLogger } from '@parley/log';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { connectBus, type Bus } from './connect.js';

/**
 * For the bus package's integration tests (not built into dist): a test environment of its own
 * and a bus connection to it, opened before the file's tests and closed after them. Read
 * `env` and `bus` inside tests (they are set by beforeAll).
 */
export function useTestBus(name: string): { readonly env: TestEnv; readonly bus: Bus } {
  const context = {} as { env: TestEnv; bus: Bus };
  beforeAll(async () => {
    context.env = await createTestEnv();
    context.bus = await connectBus({ url: context.env.natsUrl, identity: context.env.busIdentity, name, log: createLogger({ service: 'test', level: 'silent' }) });
  });
  afterAll(async () => {
    await context.bus?.nc.close();
    await context.env?.cleanup();
  });
  return context;
}
