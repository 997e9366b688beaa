import { createServer, type Server } from 'node:http';
import { mkdtemp } from 'node:fs/promises';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { freePort, http, startCompiledServices } from './stack.js';

const root = path.resolve(import.meta.dirname, '..');
const REGISTER = pathToFileURL(path.join(root, 'packages', 'telemetry', 'dist', 'register.js')).href;

/** One span as the OTLP/HTTP JSON exporter sends it, flattened. */
interface ReceivedSpan {
  service: string;
  scope: string;
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  attributes: Record<string, unknown>;
}
const SERVER = 2; // OTLP SpanKind: 1 internal, 2 server, 3 client

type AnyValue = { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number };
type KeyValue = { key: string; value: AnyValue };
interface ExportRequest {
  resourceSpans: {
    resource: { attributes: KeyValue[] };
    scopeSpans: { scope: { name: string }; spans: { name: string; kind: number; traceId: string; spanId: string; parentSpanId?: string; attributes?: KeyValue[] }[] }[];
  }[];
}
const valueOf = (v: AnyValue) => v.stringValue ?? (v.intValue === undefined ? undefined : Number(v.intValue)) ?? v.boolValue ?? v.doubleValue;
const attributesOf = (list: KeyValue[] | undefined) => Object.fromEntries((list ?? []).map((a) => [a.key, valueOf(a.value)]));

/** A minimal OTLP/HTTP receiver: what Tempo's 4318 port is to the services, in this process. */
function otlpReceiver() {
  const spans: ReceivedSpan[] = [];
  const bodies: string[] = [];
  const contentTypes = new Set<string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      bodies.push(body);
      if (req.method === 'POST' && req.url === '/v1/traces') {
        // @opentelemetry/exporter-trace-otlp-http sends OTLP's JSON encoding (ids in hex).
        contentTypes.add(String(req.headers['content-type']));
        for (const rs of (JSON.parse(body) as ExportRequest).resourceSpans) {
          const service = String(attributesOf(rs.resource.attributes)['service.name']);
          for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) {
              spans.push({ service, scope: ss.scope.name, name: s.name, kind: s.kind, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, attributes: attributesOf(s.attributes) });
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return { server, spans, bodies, contentTypes };
}

/**
 * The services as operators run them (compiled, one process each, `node --import
 * @parley/telemetry/register`), exporting to an OTLP receiver this test runs. What only the
 * loader hook makes possible shows up here: ioredis is a CommonJS package imported from ES modules,
 * and without the hook no span of it is ever made.
 */
describe('automatic instrumentation (http, fastify, ioredis) through the --import entry point', () => {
  let env: TestEnv;
  const receiver = otlpReceiver();
  let services: { stop(): Promise<void> } | undefined;
  const output: string[] = [];
  let base: string;
  let usersMetricsPort: number;

  beforeAll(async () => {
    env = await createTestEnv();
    await new Promise<void>((resolve) => (receiver.server as Server).listen(0, '127.0.0.1', resolve));
    const { port: otlpPort } = receiver.server.address() as net.AddressInfo;
    const mailDir = await mkdtemp(path.join(os.tmpdir(), 'parley-otel-mail-'));
    const gatewayPort = await freePort();
    usersMetricsPort = await freePort();
    base = `http://127.0.0.1:${gatewayPort}`;
    const common = {
      ...process.env,
      ...env.env,
      MAIL_DIR: mailDir,
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlpPort}`,
      // Export every 100 ms instead of every 5 s, so the test waits for spans, not for a timer.
      OTEL_BSP_SCHEDULE_DELAY: '100',
    };
    const ports: Record<string, Record<string, string>> = {
      users: { METRICS_PORT: String(usersMetricsPort) },
      messages: { METRICS_PORT: '0' },
      gateway: { PORT: String(gatewayPort), METRICS_PORT: '0' },
    };
    services = await startCompiledServices({ envOf: (service) => ({ ...common, ...ports[service] }), baseUrl: base, output, nodeArgs: ['--import', REGISTER] });
  }, 60_000);

  afterAll(async () => {
    await services?.stop();
    await new Promise((resolve) => receiver.server.close(resolve));
    await env?.cleanup();
  });

  const inTrace = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);
  const parentOf = (s: ReceivedSpan) => receiver.spans.find((p) => p.spanId === s.parentSpanId);
  const descendsFrom = (s: ReceivedSpan, ancestor: ReceivedSpan): boolean => {
    for (let p = parentOf(s); p; p = parentOf(p)) if (p.spanId === ancestor.spanId) return true;
    return false;
  };

  it('traces register, login and a profile read from the gateway through NATS to SQL and Redis, with no secret in any span', async () => {
    const password = 'Sentinel-Otel-Password-3f9a';
    const api = (method: string, url: string, options: { token?: string; body?: unknown } = {}) => http({ baseUrl: base }, method, url, options);
    const reg = await eventually(async () => {
      const r = await api('POST', '/api/v1/auth/register', { body: { username: 'traced', email: 'traced@example.test', password } });
      return r.status === 201 ? r : undefined;
    }, 20_000, 'register');
    const login = await api('POST', '/api/v1/auth/login', { body: { login: 'traced', password } });
    expect(login.status).toBe(200);
    const me = await api('GET', '/api/v1/users/me', { token: login.body.accessToken });
    expect(me.status).toBe(200);
    const secrets = [password, reg.body.accessToken, reg.body.refreshToken, login.body.accessToken, login.body.refreshToken];

    // The gateway's span per HTTP request (uWebSockets.js: made by hand) is the root; the users
    // service's NATS `serve` span continues it from the request's headers.
    const traceOf = async (method: string, route: string, wanted: (spans: ReceivedSpan[]) => boolean) =>
      eventually(async () => {
        const roots = receiver.spans.filter((s) => s.service === 'gateway' && s.kind === SERVER && s.attributes['http.route'] === route && s.attributes['http.request.method'] === method);
        for (const r of roots) {
          const spans = inTrace(r.traceId);
          // Each process exports in its own batches, so a span can arrive before its parent (a
          // projector's SQL before the consume span it ran in): wait until every chain is whole.
          const whole = spans.every((s) => s === r || parentOf(s) !== undefined);
          if (whole && wanted(spans)) return { root: r, spans };
        }
        return undefined;
      }, 10_000, `the trace of ${method} ${route}`);
    const isPg = (s: ReceivedSpan) => s.scope === 'parley-pg' && s.attributes['db.system.name'] === 'postgresql';
    const isRedis = (s: ReceivedSpan) => s.scope === '@opentelemetry/instrumentation-ioredis' && s.attributes['db.system'] === 'redis';

    for (const [method, route] of [['POST', '/api/v1/auth/register'], ['POST', '/api/v1/auth/login']] as const) {
      const isServe = (s: ReceivedSpan) => s.service === 'users' && s.name === `serve ${env.namespace}.api.users`;
      // Each process exports in its own batches: wait for the serve span too, not only its SQL.
      const { root: r, spans } = await traceOf(method, route, (all) => all.some(isPg) && all.some(isServe));
      expect(r.name).toBe(`${method} ${route}`);
      expect(r.attributes['http.response.status_code']).toBe(route.endsWith('register') ? 201 : 200);
      const serve = spans.find(isServe)!;
      expect(serve.parentSpanId).toBe(r.spanId);
      for (const sql of spans.filter(isPg)) expect(descendsFrom(sql, serve)).toBe(true);
    }

    // The profile read: the cache is asked first (an ioredis client span, recorded only inside a
    // trace), then Postgres on a miss.
    const read = await traceOf('GET', '/api/v1/users/me', (all) => all.some(isRedis) && all.some(isPg));
    const serve = read.spans.find((s) => s.service === 'users' && s.kind === SERVER)!;
    expect(serve.parentSpanId).toBe(read.root.spanId);
    const redis = read.spans.filter(isRedis);
    for (const span of [...redis, ...read.spans.filter(isPg)]) expect(descendsFrom(span, serve)).toBe(true);
    // db.statement is the command name alone: neither the key (ids) nor a cached value.
    for (const span of redis) expect(String(span.attributes['db.statement'])).toMatch(/^[a-z]+$/);
    // The cache read is one script call (GET plus the fill mark, packages/cache FILL_GUARD); the
    // fill after the miss is a second one.
    expect(redis.map((s) => s.attributes['db.statement'])).toContain('evalsha');

    expect([...receiver.contentTypes]).toEqual(['application/json']);
    // Nothing of a password or token in any export: attributes, names, resources, all of it.
    await new Promise((r) => setTimeout(r, 300)); // one more export round
    const exported = receiver.bodies.join('\n');
    for (const secret of secrets) expect(exported.includes(secret), `an exported span contains ${secret.slice(0, 12)}…`).toBe(false);
  }, 60_000);

  it('makes an http server span and fastify spans for the ops server, the readiness checks inside them, and no query string', async () => {
    const token = 'sentinel-query-token-8c2d';
    expect((await fetch(`http://127.0.0.1:${usersMetricsPort}/readyz?token=${token}`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${usersMetricsPort}/metrics`)).status).toBe(200);

    const { server, spans } = await eventually(async () => {
      const s = receiver.spans.find((x) => x.service === 'users' && x.scope === '@opentelemetry/instrumentation-http' && x.attributes['http.route'] === '/readyz');
      if (!s) return undefined;
      const all = inTrace(s.traceId);
      return all.some((x) => x.name === 'ping') && all.some((x) => x.name === 'select') ? { server: s, spans: all } : undefined;
    }, 10_000, 'the /readyz trace');

    // instrumentation-http: the server span, named by the route fastify matched.
    expect(server.kind).toBe(SERVER);
    expect(server.name).toBe('GET /readyz');
    expect(server.parentSpanId).toBeUndefined();
    expect(server.attributes['http.status_code']).toBe(200);
    expect(server.attributes['http.target']).toBe('/readyz');
    // @fastify/otel: the request span under it, the route handler under that.
    const request = spans.find((s) => s.scope === '@fastify/otel' && s.name === 'request')!;
    expect(request.parentSpanId).toBe(server.spanId);
    expect(request.attributes).toMatchObject({ 'http.route': '/readyz', 'url.path': '/readyz', 'http.response.status_code': 200 });
    const handler = spans.find((s) => s.scope === '@fastify/otel' && s.attributes['fastify.type'] === 'request-handler')!;
    expect(handler.parentSpanId).toBe(request.spanId);
    // The readiness checks: Redis PING (ioredis instrumentation) and Postgres SELECT 1 (@parley/pg).
    const ping = spans.find((s) => s.name === 'ping')!;
    expect(ping.scope).toBe('@opentelemetry/instrumentation-ioredis');
    expect(ping.parentSpanId).toBe(handler.spanId);
    const select = spans.find((s) => isPgSelect(s))!;
    expect(select.parentSpanId).toBe(handler.spanId);

    // Prometheus scrapes and liveness probes make no traces.
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.spans.some((s) => s.attributes['http.route'] === '/metrics' || s.attributes['http.target'] === '/metrics')).toBe(false);
    expect(receiver.bodies.join('\n')).not.toContain(token);
  }, 30_000);
});

const isPgSelect = (s: ReceivedSpan) => s.scope === 'parley-pg' && s.name === 'select';
