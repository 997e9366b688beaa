import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export type ReadinessCheck = () => Promise<boolean | null>;

export interface OpsServerOptions {
  /** Prometheus registry served on /metrics. */
  registry: Registry;
  /** Named dependency checks; `null` means "not configured" (Redis is optional) and does not fail readiness. */
  checks: Record<string, ReadinessCheck>;
}

/**
 * The operational endpoints every service exposes on its own metrics port, never on the client
 * port: /healthz (the process is alive), /readyz (its links are up), /metrics (Prometheus).
 */
export function buildOpsServer(options: OpsServerOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const results: Record<string, 'ok' | 'down' | 'disabled'> = {};
    let ready = true;
    await Promise.all(
      Object.entries(options.checks).map(async ([name, check]) => {
        let ok: boolean | null;
        try {
          ok = await check();
        } catch {
          ok = false;
        }
        results[name] = ok === null ? 'disabled' : ok ? 'ok' : 'down';
        // Redis is a cache: its outage degrades speed, not readiness.
        if (ok === false && name !== 'redis') ready = false;
      }),
    );
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks: results });
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', options.registry.contentType);
    return options.registry.metrics();
  });
  return app;
}
