import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@parley/testing';
import { runCleanup } from './cli.js';


/**
 * A pass whose dependencies cannot be opened (NATS down) failed as a run: it exited 2, reserved
 * for bad arguments and settings, and exported no metrics, so RetentionLastRunFailed
 * (deploy/monitoring/rules/jobs.yml: last run against last success) never fired.
 */
describe('runCleanup when NATS is unreachable', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'parley-cleanup-down-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 1 and exports the failed run, keeping the last success', async () => {
    const textfile = path.join(dir, 'retention.prom');
    await writeFile(textfile, 'retention_last_success_timestamp_seconds 1700000000\n');
    const lines: string[] = [];
    const before = Date.now() / 1000;
    const result = await runCleanup(['--now', '2027-01-01T00:00:00Z'], { NATS_URL: `nats://127.0.0.1:${await freePort()}`, LOG_LEVEL: 'silent', RETENTION_METRICS_TEXTFILE: textfile }, (line) => lines.push(line));
    expect(result).toEqual({ exitCode: 1 });
    expect(lines.join('\n')).toMatch(/^retention pass failed: /);
    const exported = await readFile(textfile, 'utf8');
    const lastRun = Number(/^retention_last_run_timestamp_seconds (\S+)$/m.exec(exported)?.[1]);
    expect(lastRun).toBeGreaterThanOrEqual(before);
    expect(exported).toMatch(/^retention_last_success_timestamp_seconds 1700000000$/m);
  });
});
