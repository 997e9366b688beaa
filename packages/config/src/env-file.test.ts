import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyEnvFile, CommonEnv, loadEnv, withoutEnvFileArgs } from './index.js';

describe('applyEnvFile (issue 20: .env was read by nothing)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'parley-envfile-'));
    await writeFile(path.join(dir, '.env'), '# a comment\nMESSAGE_RETENTION_DAYS=30\nREDIS_URL="redis://127.0.0.1:6379"\nLOG_LEVEL=debug\n');
    await writeFile(path.join(dir, 'other.env'), 'MESSAGE_RETENTION_DAYS=7\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads .env in the working directory; the environment wins over the file', () => {
    const env: NodeJS.ProcessEnv = { LOG_LEVEL: 'warn' };
    const result = applyEnvFile([], env, dir);
    expect(result).toEqual({ file: path.join(dir, '.env'), applied: ['MESSAGE_RETENTION_DAYS', 'REDIS_URL'] });
    const config = loadEnv(CommonEnv, env);
    expect(config.MESSAGE_RETENTION_DAYS).toBe(30);
    expect(config.REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(config.LOG_LEVEL).toBe('warn');
  });

  it('takes --env-file (both spellings) over PARLEY_ENV_FILE over .env, and refuses a named file that is missing', () => {
    for (const argv of [['--env-file', 'other.env'], ['--env-file=other.env']]) {
      const env: NodeJS.ProcessEnv = { PARLEY_ENV_FILE: '.env' };
      applyEnvFile(argv, env, dir);
      expect(env.MESSAGE_RETENTION_DAYS).toBe('7');
    }
    const env: NodeJS.ProcessEnv = { PARLEY_ENV_FILE: 'other.env' };
    applyEnvFile([], env, dir);
    expect(env.MESSAGE_RETENTION_DAYS).toBe('7');
    expect(() => applyEnvFile(['--env-file', 'missing.env'], {}, dir)).toThrow(/not found/);
    expect(() => applyEnvFile([], { PARLEY_ENV_FILE: 'missing.env' }, dir)).toThrow(/not found/);
  });

  it('does nothing without a file, and strips its own arguments for the command', async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'parley-envfile-none-'));
    try {
      expect(applyEnvFile([], {}, empty)).toEqual({ file: null, applied: [] });
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
    expect(withoutEnvFileArgs(['backup', '--env-file', 'x.env', '/backups', '--env-file=y'])).toEqual(['backup', '/backups']);
  });
});
