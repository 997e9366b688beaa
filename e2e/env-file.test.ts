import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './stack.js';

const root = path.join(import.meta.dirname, '..');

/** Runs a compiled command in `cwd` with `env`; resolves with its exit code and stdout. */
function run(args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Issue 20: an operator's `.env` was read by nothing; a shortened MESSAGE_RETENTION_DAYS in it
 * stayed 365. The compiled commands read it from the working directory (or --env-file), under
 * what the environment sets itself.
 */
describe('settings from .env, as an operator runs the jobs with `parley`', () => {
  let stack: Stack;
  let dir: string;
  beforeAll(async () => {
    stack = await startStack();
    dir = await mkdtemp(path.join(os.tmpdir(), 'parley-dotenv-'));
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('npm start hands --env-file to every service, which then reads that file and not .env', async () => {
    // `npm start -- --env-file ops.env` ran the services on .env (or nothing): Node does not load a
    // file named after the script, and scripts/start.mjs did not pass it on. Each file here holds a
    // setting that stops a service at once, naming it, so nothing gets as far as a port.
    const cwd = await mkdtemp(path.join(os.tmpdir(), 'parley-start-env-'));
    try {
      await writeFile(path.join(cwd, '.env'), 'LOG_LEVEL=loud\n');
      await writeFile(path.join(cwd, 'ops.env'), 'PARLEY_NAMESPACE=Not A Namespace\n');
      const started = await run([path.join(root, 'scripts/start.mjs'), '--env-file', 'ops.env'], cwd, { PATH: process.env.PATH ?? '' });
      const output = started.stdout + started.stderr;
      expect(started.code).not.toBe(0);
      expect(output).toContain('PARLEY_NAMESPACE');
      expect(output).not.toContain('LOG_LEVEL');
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  }, 60_000);

  it('a retention dry run takes MESSAGE_RETENTION_DAYS from .env, --env-file over it, and the environment over both', async () => {
    const now = '2026-06-01T00:00:00.000Z';
    // Through `parley cleanup` (bin/parley.mjs), as a production install or the image runs it.
    const parley = path.join(root, 'bin/parley.mjs');
    const env = { ...stack.vars, PATH: process.env.PATH ?? '' };
    delete (env as Record<string, string | undefined>).MESSAGE_RETENTION_DAYS;
    await writeFile(path.join(dir, '.env'), 'MESSAGE_RETENTION_DAYS=30\n');
    await writeFile(path.join(dir, 'ops.env'), 'MESSAGE_RETENTION_DAYS=7\n');
    const cutoff = async (args: string[], extra: Record<string, string> = {}) => {
      const { code, stdout, stderr } = await run([parley, 'cleanup', '--dry-run', '--json', '--now', now, ...args], dir, { ...env, ...extra });
      expect(code, stderr).toBe(0);
      return JSON.parse(stdout.trim().split('\n').pop()!).cutoffs.messages as string;
    };
    expect(await cutoff([])).toBe('2026-05-02T00:00:00.000Z');
    expect(await cutoff(['--env-file', 'ops.env'])).toBe('2026-05-25T00:00:00.000Z');
    expect(await cutoff(['--env-file', 'ops.env'], { MESSAGE_RETENTION_DAYS: '100' })).toBe('2026-02-21T00:00:00.000Z');
    // A file named but missing is an error, not a silent default. (Node 20 itself also reads an
    // --env-file argument, even one after the script, and stops first: exit 9, "node: nope.env: not
    // found"; newer Node leaves it to the command, which exits 2.)
    const missing = await run([parley, 'cleanup', '--dry-run', '--env-file', 'nope.env'], dir, env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/nope\.env:? not found/);
    // An unknown command lists the commands.
    const usage = await run([parley, 'clean'], dir, env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/usage: parley <command>[\s\S]*cleanup[\s\S]*rotate/);
  }, 60_000);
});
