import { request } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayService } from '../services/gateway/src/service.js';
import { register, startStack, type Stack } from './stack.js';

/** Raw GET (fetch would normalise `..` away before sending, hiding what a real attacker sends). */
function get(port: number, rawPath: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: rawPath, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('gateway: the web client at /', () => {
  let stack: Stack;
  let port: number;
  let missing: Awaited<ReturnType<typeof startGatewayService>>;
  const dir = mkdtempSync(path.join(tmpdir(), 'parley-web-'));

  beforeAll(async () => {
    mkdirSync(path.join(dir, 'assets'));
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>t</title>');
    writeFileSync(path.join(dir, 'assets', 'app-1234.js'), 'console.log(1)');
    writeFileSync(path.join(dir, 'robots.txt'), 'User-agent: *');
    writeFileSync(path.join(path.dirname(dir), 'parley-secret.txt'), 'secret');
    stack = await startStack({ WEB_CLIENT_DIR: dir });
    port = Number(new URL(stack.baseUrl).port);
    missing = await startGatewayService({ ...stack.vars, PORT: '0', METRICS_PORT: '0', WEB_CLIENT_DIR: path.join(dir, 'nope') });
  });
  afterAll(async () => {
    await missing?.stop();
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(path.join(path.dirname(dir), 'parley-secret.txt'), { force: true });
  });

  it('serves index.html for / and for client routes, revalidated, with a CSP', async () => {
    for (const p of ['/', '/chat/123', '/people?x=1']) {
      const answer = await get(port, p);
      expect(answer.status, p).toBe(200);
      expect(answer.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(answer.headers['cache-control']).toBe('no-cache');
      expect(answer.headers['content-security-policy']).toContain("default-src 'self'");
      expect(answer.body).toContain('<title>t</title>');
    }
  });

  it('serves hashed assets as immutable, other files revalidated, each with its type', async () => {
    const js = await get(port, '/assets/app-1234.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(js.headers['x-content-type-options']).toBe('nosniff');
    const txt = await get(port, '/robots.txt');
    expect(txt.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(txt.headers['cache-control']).toBe('no-cache');
  });

  it('answers 404 JSON for missing files and never leaves the directory', async () => {
    const absent = await get(port, '/assets/nope.js');
    expect(absent.status).toBe(404);
    expect(JSON.parse(absent.body).error.code).toBe('not_found');
    for (const p of ['/../parley-secret.txt', '/assets/../../parley-secret.txt', '/%2e%2e/parley-secret.txt', '/..%2fparley-secret.txt', '/assets/..%5c..%5cparley-secret.txt']) {
      const answer = await get(port, p);
      expect(answer.body, p).not.toContain('secret');
      expect(answer.status, p).not.toBe(500);
    }
  });

  it('leaves the API, the socket path and the ops paths to the gateway', async () => {
    const a = await register(stack);
    const me = await fetch(`${stack.baseUrl}/api/v1/users/me`, { headers: { authorization: `Bearer ${a.accessToken}` } });
    expect(me.status).toBe(200);
    const unknown = await get(port, '/api/v1/nothing-here');
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body).error.message).toBe('No such route');
    expect((await get(port, '/metrics')).status).toBe(404);
  });

  it('answers 404 JSON at / when the client is not built', async () => {
    const answer = await get(missing.port, '/');
    expect(answer.status).toBe(404);
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(JSON.parse(answer.body).error.message).toContain('not built');
  });
});
