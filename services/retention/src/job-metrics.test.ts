import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobMetrics, exportJobMetrics } from './job-metrics.js';

/**
 * Issue 20: a failed pass exported `retention_last_success_timestamp_seconds 0`, so the alert
 * RetentionNotRun reported "56 years" and the last real success was lost.
 */
describe('retention job metrics', () => {
  let dir: string;
  let server: Server;
  let pushed: { method: string; body: string }[] = [];
  let url: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'parley-job-metrics-'));
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        pushed.push({ method: req.method ?? '', body });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the last success in the textfile when a pass fails', async () => {
    const file = path.join(dir, 'retention.prom');
    const ok = createJobMetrics();
    ok.lastSuccess.set(1_700_000_000);
    await exportJobMetrics(ok, { textfile: file }, true);
    const failed = createJobMetrics();
    failed.lastRun.set(1_700_086_400);
    await exportJobMetrics(failed, { textfile: file }, false);
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/^retention_last_success_timestamp_seconds 1700000000$/m);
    expect(text).toMatch(/^retention_last_run_timestamp_seconds 1700086400$/m);
  });

  it('writes no last success at all when a first pass fails', async () => {
    const file = path.join(dir, 'first.prom');
    await writeFile(file, '');
    await exportJobMetrics(createJobMetrics(), { textfile: file }, false);
    expect(await readFile(file, 'utf8')).not.toContain('retention_last_success_timestamp_seconds');
  });

  it('pushes no last-success sample for a failed pass (the Pushgateway keeps the old one), and one for a success', async () => {
    pushed = [];
    await exportJobMetrics(createJobMetrics(), { pushgateway: url }, false);
    const ok = createJobMetrics();
    ok.lastSuccess.set(1_700_000_000);
    await exportJobMetrics(ok, { pushgateway: url }, true);
    expect(pushed.map((p) => p.method)).toEqual(['POST', 'POST']);
    expect(pushed[0]!.body).not.toContain('retention_last_success_timestamp_seconds');
    expect(pushed[0]!.body).toContain('retention_last_run_timestamp_seconds');
    expect(pushed[1]!.body).toMatch(/retention_last_success_timestamp_seconds 1700000000/);
  });
});
