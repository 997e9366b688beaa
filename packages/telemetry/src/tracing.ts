import { NodeSDK } from '@opentelemetry/sdk-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { Instrumentation } from '@opentelemetry/instrumentation';

// One SDK per process, whoever starts it first: the --import entry point (register.ts, with the
// automatic instrumentations) or startTracing in openDeps. A global symbol rather than a module
// variable, so that two copies of this module (a linked workspace and a packed one) still agree.
const RUNNING = Symbol.for('parley.telemetry.sdk');
type WithSdk = typeof globalThis & { [RUNNING]?: () => Promise<void> };

/**
 * Starts the OpenTelemetry SDK exporting over OTLP/HTTP (JSON) to `<endpoint>/v1/traces`, unless one
 * is already running in this process; returns the (idempotent) shutdown that flushes pending spans.
 */
export function startSdk(serviceName: string, endpoint: string, instrumentations: Instrumentation[] = []): () => Promise<void> {
  const g = globalThis as WithSdk;
  const running = g[RUNNING];
  if (running) return running;
  const sdk = new NodeSDK({
    serviceName,
    traceExporter: new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, '')}/v1/traces` }),
    instrumentations,
  });
  sdk.start();
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= sdk.shutdown());
  g[RUNNING] = stop;
  return stop;
}

/**
 * Starts OpenTelemetry when an OTLP endpoint is configured (Grafana Tempo accepts OTLP/HTTP).
 * Without one, the @opentelemetry/api calls in the code are no-ops and cost next to nothing.
 * Call it first in main.ts, before other imports do work, so spans have a provider.
 *
 * A service started with `node --import @parley/telemetry/register` already has the SDK (with the
 * automatic http, fastify and ioredis instrumentations); then this returns that SDK's shutdown.
 * Without the flag it starts an SDK for Parley's own spans only (WebSocket, NATS, SQL): the
 * automatic instrumentations need the loader hook in place before fastify and ioredis load.
 */
export function startTracing(serviceName: string, endpoint: string | undefined): () => Promise<void> {
  const running = (globalThis as WithSdk)[RUNNING];
  if (running) return running;
  if (!endpoint) return async () => {};
  return startSdk(serviceName, endpoint);
}
