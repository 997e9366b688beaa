import type { Bus } from '@parley/bus';
import { createLogger } from '@parley/log';
import { createMetrics } from '@parley/telemetry';
import { ChatDelivery } from './delivery.js';
import { Presence } from './presence.js';
import { SocketRegistry } from './registry.js';

/**
 * A Presence with no sockets, as a gateway's would be, on `bus` and `namespace`: for tests that
 * drive its beats and listings by hand (services/gateway/src/ws/presence.int.test.ts,
 * e2e/presence-notices.test.ts). Not started; the caller starts and stops it.
 */
export function presenceWithoutSockets(bus: Bus, namespace: string): Presence {
  const metrics = createMetrics('gateway');
  return new Presence({
    bus,
    namespace,
    registry: new SocketRegistry(),
    delivery: new ChatDelivery(metrics, 1 << 20),
    log: createLogger({ service: 'test', level: 'silent' }),
    metrics,
    serviceTimeoutMs: 5_000,
    replicas: 1,
    heartbeatMs: 10_000,
  });
}
