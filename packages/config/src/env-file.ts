import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';

export class EnvFileError extends Error {
  override name = 'EnvFileError';
}

/**
 * Settings from a file, the same way for every service and command (issue 20: nothing read `.env`,
 * so a shortened MESSAGE_RETENTION_DAYS in it stayed 365 and REDIS_URL left the cache off).
 *
 * Which file: `--env-file <path>` (or `--env-file=<path>`) among the arguments, else `PARLEY_ENV_FILE`,
 * else `.env` in the working directory if there is one. A file named explicitly must exist.
 * Precedence: a variable already set in the environment wins over the file (as with compose,
 * systemd's EnvironmentFile= and dotenv), so `FOO=1 npm start` still overrides `.env`.
 *
 * Returns the file read (or null) and the names it set, never the values. Mutates `env`.
 */
export function applyEnvFile(argv: readonly string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): { file: string | null; applied: string[] } {
  let named: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--env-file') named = argv[i + 1];
    else if (arg.startsWith('--env-file=')) named = arg.slice('--env-file='.length);
  }
  named ??= env.PARLEY_ENV_FILE || undefined;
  const file = named ? path.resolve(cwd, named) : path.join(cwd, '.env');
  if (!existsSync(file)) {
    if (named) throw new EnvFileError(`env file ${file} not found`);
    return { file: null, applied: [] };
  }
  let parsed: Record<string, string>;
  try {
    parsed = parseEnv(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch (error) {
    throw new EnvFileError(`env file ${file} cannot be read: ${(error as Error).message}`);
  }
  const applied: string[] = [];
  for (const [key, value] of Object.entries(parsed)) {
    if (env[key] !== undefined) continue;
    env[key] = value;
    applied.push(key);
  }
  return { file, applied };
}

/** The arguments without `--env-file <path>` / `--env-file=<path>`, for commands that parse the rest. */
export function withoutEnvFileArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--env-file') i++;
    else if (!argv[i]!.startsWith('--env-file=')) out.push(argv[i]!);
  }
  return out;
}
