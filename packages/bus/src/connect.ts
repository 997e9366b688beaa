import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '@parley/log';

/** The oldest NATS server Parley runs on; its JetStream fields are the only ones the code uses. */
export const MIN_NATS_VERSION = '2.9.0';

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

export class IncompatibleServerError extends Error {
  override name = 'IncompatibleServerError';
}

/**
 * Connects to NATS and checks the server before anything else runs: a server older than 2.9 or
 * without JetStream would fail later in confusing ways, so refuse now, saying why.
 */
export async function connectBus(options: { url: string; name: string; log: Logger }): Promise<Bus> {
  const nc = await connect({
    servers: options.url,
    name: options.name,
    // Keep trying forever: a NATS restart must not kill a service (design.md, promise 1).
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    // nats.js otherwise builds an Error (a stack capture) for every request and publish, in case
    // it times out: 11 % of a gateway's CPU at 1,000 msg/s. A timeout still rejects with a
    // TimeoutError; it only lacks the caller's frames, which our own errors carry anyway.
    noAsyncTraces: true,
  });
  const info = nc.info;
  if (!info || compareVersions(info.version, MIN_NATS_VERSION) < 0) {
    await nc.close();
    throw new IncompatibleServerError(
      `NATS server ${info?.version ?? 'unknown'} at ${redactUrl(options.url)} is too old: Parley needs ${MIN_NATS_VERSION} or newer`,
    );
  }
  if (!info.jetstream) {
    await nc.close();
    throw new IncompatibleServerError(
      `NATS server at ${redactUrl(options.url)} runs without JetStream: start it with -js (JetStream is Parley's source of truth)`,
    );
  }
  (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect') {
        options.log.warn({ nats: status.type }, `nats ${status.type}`);
      }
    }
  })().catch(() => {});
  return { nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** URLs may carry credentials; they never reach a log line or an error message. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    if (u.username) u.username = '***';
    return u.toString();
  } catch {
    return '(unparseable url)';
  }
}
