import { NodeSDK } from '@opentelemetry/sdk-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';

/**
 * Starts OpenTelemetry when an OTLP endpoint is configured (Grafana Tempo accepts OTLP/HTTP).
 * Without one, the @opentelemetry/api calls in the code are no-ops and cost next to nothing.
 * Call it first in main.ts, before other imports do work, so spans have a provider.
 */
export function startTracing(serviceName: string, endpoint: string | undefined): () => Promise<void> {
  if (!endpoint) return async () => {};
  const sdk = new NodeSDK({
    serviceName,
    traceExporter: new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, '')}/v1/traces` }),
  });
  sdk.start();
  return () => sdk.shutdown();
}
