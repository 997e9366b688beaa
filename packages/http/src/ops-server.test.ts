import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildOpsServer, type ReadinessCheck } from './ops-server.js';

const up: ReadinessCheck = async () => true;
const down: ReadinessCheck = async () => false;
const disabled: ReadinessCheck = async () => null;
const throws: ReadinessCheck = async () => {
  throw new Error('ECONNREFUSED');
};

describe('buildOpsServer', () => {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
  });

  function build(checks: Record<string, ReadinessCheck>, registry = new Registry()) {
    const app = buildOpsServer({ registry, checks });
    apps.push(app);
    return app;
  }

  it('answers /healthz with 200 even when dependencies are down', async () => {
    const res = await build({ postgres: down }).inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('is ready when every check passes', async () => {
    const res = await build({ nats: up, postgres: up, redis: up }).inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready', checks: { nats: 'ok', postgres: 'ok', redis: 'ok' } });
  });

  it('is not ready (503) when a required link is down or its check throws', async () => {
    const res = await build({ nats: up, postgres: down, redis: up }).inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ status: 'not_ready', checks: { nats: 'ok', postgres: 'down', redis: 'ok' } });

    const thrown = await build({ nats: throws, postgres: up }).inject({ method: 'GET', url: '/readyz' });
    expect(thrown.statusCode).toBe(503);
    expect(thrown.json().checks.nats).toBe('down');
  });

  it('stays ready when only Redis is down or not configured', async () => {
    const redisDown = await build({ nats: up, postgres: up, redis: down }).inject({ method: 'GET', url: '/readyz' });
    expect(redisDown.statusCode).toBe(200);
    expect(redisDown.json()).toEqual({ status: 'ready', checks: { nats: 'ok', postgres: 'ok', redis: 'down' } });

    const redisOff = await build({ nats: up, postgres: up, redis: disabled }).inject({ method: 'GET', url: '/readyz' });
    expect(redisOff.statusCode).toBe(200);
    expect(redisOff.json().checks.redis).toBe('disabled');
  });

  it('serves the registry on /metrics in Prometheus text format', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 'ops_test_total', help: 'a test counter', registers: [registry] });
    counter.inc(3);
    const res = await build({}, registry).inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(registry.contentType);
    expect(res.body).toContain('# HELP ops_test_total a test counter');
    expect(res.body).toContain('# TYPE ops_test_total counter');
    expect(res.body).toMatch(/^ops_test_total 3$/m);
  });
});
