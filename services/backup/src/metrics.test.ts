import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backupMetrics, exportMetrics } from './metrics.js';

describe('backup job metrics', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'parley-backup-metrics-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const registry = () => backupMetrics({ finishedAt: new Date('2026-11-29T02:00:30Z'), bytes: 1234, durationSeconds: 30.5 });

  it('writes a node_exporter textfile', async () => {
    const file = path.join(dir, 'parley_backup.prom');
    await exportMetrics(registry(), { textfile: file });
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('backup_last_success_timestamp_seconds 1795917630');
    expect(text).toContain('backup_size_bytes 1234');
    expect(text).toContain('backup_duration_seconds 30.5');
  });

  it('pushes to a Pushgateway under job parley_backup', async () => {
    const received: { method?: string; url?: string; body: string }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push({ method: req.method, url: req.url, body });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      await exportMetrics(registry(), { pushgateway: `http://127.0.0.1:${port}` });
    } finally {
      server.close();
    }
    expect(received).toHaveLength(1);
    expect(received[0]!.method).toBe('POST'); // pushAdd: replaces only these metrics of the job
    expect(received[0]!.url).toBe('/metrics/job/parley_backup');
    expect(received[0]!.body).toContain('backup_size_bytes 1234');
  });
});
