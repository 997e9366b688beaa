import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..', '..');

/** `parley <args>` from the compiled output (built first, as for the e2e tests), as an operator runs it. */
async function parley(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [path.join(root, 'bin/parley.mjs'), ...args], { cwd: tmpdir(), env: { ...process.env, LOG_LEVEL: 'silent' } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

describe('the backup command line', () => {
  it('answers an unknown or malformed flag with exit code 2 and one line, no stack trace', async () => {
    for (const [args, flag] of [
      [['restore', 'x.tar.gz', '--forse'], '--forse'],
      [['restore', 'x.tar.gz', '--force=yes'], '--force'],
    ] as const) {
      const result = await parley([...args]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(flag);
      expect(result.stderr).not.toMatch(/^\s+at /m);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});
