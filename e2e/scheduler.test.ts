import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { startStack, type Stack } from './stack.js';

const root = path.join(import.meta.dirname, '..');
const parley = path.join(root, 'bin/parley.mjs');

/**
 * Issue 20: nothing scheduled retention or backups under compose or on a host without cron.
 * `parley schedule` (compose's `scheduler` service) runs them on cron expressions; here the
 * retention pass every two seconds instead of 03:00.
 */
describe('parley schedule', () => {
  let stack: Stack;
  let dir: string;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    stack = await startStack();
    dir = await mkdtemp(path.join(os.tmpdir(), 'parley-schedule-'));
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the retention pass on its schedule, reports each run, and stops on SIGTERM', async () => {
    const textfile = path.join(dir, 'retention.prom');
    let out = '';
    child = spawn(process.execPath, [parley, 'schedule'], {
      env: { ...process.env, ...stack.vars, LOG_LEVEL: 'silent', SCHEDULE_CLEANUP: '*/2 * * * * *', SCHEDULE_BACKUP: 'off', RETENTION_METRICS_TEXTFILE: textfile },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    const lines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const done = await eventually(async () => lines().find((l) => l.job === 'cleanup' && l.msg === 'job done'), 30_000, 'a scheduled retention pass');
    expect(done).toMatchObject({ code: 0 });
    expect(lines()).toContainEqual(expect.objectContaining({ job: 'backup', msg: 'job disabled' }));
    expect(await readFile(textfile, 'utf8')).toMatch(/^retention_last_success_timestamp_seconds \d/m);
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 60_000);

  it('refuses an invalid schedule at start', async () => {
    const code = await new Promise<number | null>((resolve) => {
      const bad = spawn(process.execPath, [parley, 'schedule'], { env: { ...process.env, SCHEDULE_CLEANUP: 'every night' }, stdio: 'ignore' });
      bad.on('exit', resolve);
    });
    expect(code).toBe(2);
  });
});
