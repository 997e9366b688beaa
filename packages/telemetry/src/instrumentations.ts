import type { IncomingMessage, RequestOptions } from 'node:http';
import type { Attributes } from '@opentelemetry/api';
import { FastifyOtelInstrumentation } from '@fastify/otel';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';

/**
 * Periodic machine traffic on the ops port (Prometheus scrapes, liveness probes): a trace per
 * request would bury the traces anyone looks for. /readyz stays traced: it is the one ops endpoint
 * that touches Postgres, Redis and NATS, and a slow or failing readiness is worth a trace.
 */
const UNTRACED_PATHS = new Set(['/metrics', '/healthz']);

const pathOf = (url: string | undefined) => (url ?? '/').split('?', 1)[0] || '/';

/**
 * Query strings never reach a span: a URL may carry a token (the WebSocket upgrade's ?token=, a
 * reset link's), and redacting named parameters only catches the names someone thought of. The
 * instrumentation merges these over the attributes it computed, so the query-free forms win.
 */
function incomingWithoutQuery(request: IncomingMessage): Attributes {
  const url = request.url ?? '/';
  if (!url.includes('?')) return {};
  const path = pathOf(url);
  return { 'http.target': path, 'http.url': `http://${request.headers.host ?? 'localhost'}${path}`, 'url.query': 'REDACTED' };
}

function outgoingWithoutQuery(options: RequestOptions): Attributes {
  const url = options.path ?? '/';
  if (!url.includes('?')) return {};
  const path = pathOf(url);
  const host = `${options.hostname ?? options.host ?? 'localhost'}${options.port ? `:${options.port}` : ''}`;
  const full = `${options.protocol ?? 'http:'}//${host}${path}`;
  return { 'http.target': path, 'http.url': full, 'url.full': full };
}

/**
 * The automatic instrumentations every service runs with when tracing is on (register.ts):
 * - http: a server span per request to the fastify ops server (the only node:http server; the
 *   gateway's uWebSockets.js is not node:http and makes its own spans), client spans for
 *   outgoing requests made inside a trace. No headers are recorded (none are configured), so no
 *   Authorization header reaches a span; query strings are dropped (above).
 * - @fastify/otel: fastify's own, maintained instrumentation (the contrib
 *   @opentelemetry/instrumentation-fastify is deprecated in its favour). It hooks every fastify
 *   instance through fastify's diagnostics channel, so it needs no module patching at all, and
 *   gives http.route to the http server span.
 * - ioredis: a client span per command, only inside a trace (requireParentSpan, the default), so
 *   background cache traffic makes none. db.statement is the command name alone: keys hold user
 *   and session ids, values hold cached rows, and neither belongs in a trace.
 * PostgreSQL has no automatic instrumentation here on purpose: @parley/pg's pool already makes a
 * client span per statement (bounded names, no SQL text); instrumentation-pg would double them.
 */
export function automaticInstrumentations(): Instrumentation[] {
  return [
    new HttpInstrumentation({
      ignoreIncomingRequestHook: (request) => UNTRACED_PATHS.has(pathOf(request.url)),
      requireParentforOutgoingSpans: true,
      startIncomingSpanHook: incomingWithoutQuery,
      startOutgoingSpanHook: outgoingWithoutQuery,
    }),
    new FastifyOtelInstrumentation({
      registerOnInitialization: true,
      ignorePaths: (route) => UNTRACED_PATHS.has(route.url),
      // @fastify/otel records request.url, query string included, as url.path.
      requestHook: (span, request) => span.setAttribute('url.path', pathOf(request.url)),
    }),
    new IORedisInstrumentation({ dbStatementSerializer: (command) => command }),
  ];
}
