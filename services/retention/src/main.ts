import { runCleanup } from './cli.js';

// One pass, then exit with its outcome: the CronJob's (or cron's) success is the exit code.
runCleanup(process.argv.slice(2), process.env)
  .then(({ exitCode }) => process.exit(exitCode))
  .catch((error: unknown) => {
    process.stderr.write(`retention: ${(error as Error).message}\n`);
    process.exit(2);
  });
