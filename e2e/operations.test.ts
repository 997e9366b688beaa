import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, register, startStack, type Stack } from './stack.js';

describe('operational endpoints', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.stop());

  it('serves healthz, readyz and metrics on each service metrics port, not on the client port', async () => {
    for (const port of Object.values(stack.metricsPorts)) {
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(200);
      expect(((await ready.json()) as any).checks.nats).toBe('ok');
    }
    const onClientPort = await http(stack, 'GET', '/metrics');
    expect(onClientPort.status).toBe(404);
  });

  it('labels HTTP metrics by route template, never by raw path, and keeps secrets out', async () => {
    const a = await register(stack, 'metrics');
    await http(stack, 'GET', `/api/v1/users/${a.id}`, { token: a.accessToken });
    const text = await (await fetch(`http://127.0.0.1:${stack.metricsPorts.gateway}/metrics`)).text();
    expect(text).toMatch(/http_requests_total\{method="POST",route="\/api\/v1\/auth\/register",status_code="201"[^}]*\} 1/);
    expect(text).toMatch(/http_requests_total\{method="GET",route="\/api\/v1\/users\/:id",status_code="200"/);
    expect(text).not.toContain(a.id);
    expect(text).not.toContain(a.accessToken);
    for (const name of ['http_request_duration_seconds', 'http_request_size_bytes', 'http_response_size_bytes', 'websocket_connections_total', 'websocket_messages_total', 'database_queries_total', 'database_query_duration_seconds', 'messages_total', 'users_total', 'active_users']) {
      expect(text).toContain(`# TYPE ${name}`);
    }
    const users = await (await fetch(`http://127.0.0.1:${stack.metricsPorts.users}/metrics`)).text();
    expect(users).toMatch(/users_total\{service="users"\} 1/);
    // Labelled by statement and schema-qualified table (bounded), never by SQL text.
    expect(users).toMatch(/database_queries_total\{operation="insert",table="users.users",outcome="ok",service="users"\} \d+/);
  });
});
