import { applyEnvFile, withoutEnvFileArgs } from '@parley/config';
import { runCleanup } from './cli.js';

// One pass, then exit with its outcome: the CronJob's (or cron's) success is the exit code.
// Settings from .env (or --env-file / PARLEY_ENV_FILE) under the environment's own.
Promise.resolve()
  .then(() => applyEnvFile())
  .then(() => runCleanup(withoutEnvFileArgs(process.argv.slice(2)), process.env))
  .then(({ exitCode }) => process.exit(exitCode))
  .catch((error: unknown) => {
    process.stderr.write(`retention: ${(error as Error).message}\n`);
    process.exit(2);
  });
