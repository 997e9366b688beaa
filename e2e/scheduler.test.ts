import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { startStack, type Stack } from './stack.js';

const root = path.join(import.meta.dirname, '..');
const parley = path.join(root, 'bin/parley.mjs');

/** The environment without the settings a test gives the schedule in a file (the environment would win). */
function withoutSchedule(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { SCHEDULE_CLEANUP: _c, SCHEDULE_BACKUP: _b, RETENTION_METRICS_TEXTFILE: _t, LOG_LEVEL: _l, PARLEY_ENV_FILE: _f, ...rest } = env;
  return rest;
}

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

  it('runs the retention pass on its schedule, reports each run, and stops on SIGTERM, with the schedule and the job\'s settings from --env-file', async () => {
    const textfile = path.join(dir, 'retention.prom');
    // The schedule and a setting of the job in the file named by --env-file (the schedule read the
    // environment alone: it kept 03:00, and its jobs ran without the file).
    const settings = path.join(dir, 'parley.env');
    await writeFile(settings, `SCHEDULE_CLEANUP="*/2 * * * * *"\nSCHEDULE_BACKUP=off\nRETENTION_METRICS_TEXTFILE=${textfile}\nLOG_LEVEL=silent\n`);
    let out = '';
    child = spawn(process.execPath, [parley, 'schedule', '--env-file', settings], {
      env: { ...withoutSchedule(process.env), ...stack.vars },
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
