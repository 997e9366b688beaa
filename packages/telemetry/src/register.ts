/**
 * The process-wide tracing entry point, loaded before the service's own modules:
 *
 *   node --import @parley/telemetry/register services/users/dist/main.js
 *
 * The services are ES modules, and fastify, ioredis and pg are CommonJS packages they import; an
 * instrumentation can only patch those if the import-in-the-middle loader hook is registered
 * before they load, which means here, not in main.ts (its static imports have all run by then).
 *
 * With OTEL_EXPORTER_OTLP_ENDPOINT unset it does nothing at all: no hook, no SDK, nothing loaded
 * (the imports below are dynamic for that reason).
 */
const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;

if (endpoint) {
  const { register } = await import('node:module');
  const { createAddHookMessageChannel } = await import('import-in-the-middle');
  const { startSdk } = await import('./tracing.js');
  const { automaticInstrumentations } = await import('./instrumentations.js');
  // The hook intercepts only the modules an instrumentation asked for (the message channel tells
  // the loader thread which), not every module the service imports.
  const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
  register('import-in-the-middle/hook.mjs', import.meta.url, registerOptions);
  startSdk(serviceName(), endpoint, automaticInstrumentations());
  await waitForAllMessagesAcknowledged();
}

/** OTEL_SERVICE_NAME, else the service directory of the entry script (services/<name>/dist/main.js). */
function serviceName(): string {
  const fromEnv = process.env.OTEL_SERVICE_NAME;
  if (fromEnv) return fromEnv;
  const entry = process.argv[1] ?? '';
  return /services[\\/]([^\\/]+)[\\/]dist[\\/]/.exec(entry)?.[1] ?? 'parley';
}

export {};
