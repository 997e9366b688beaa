import { runService, type Deps, type RunningService } from '@parley/runtime-pg';
import type { ProjectorHooks } from '@parley/bus';
import { buildApp, MIGRATIONS_DIR, SCHEMA, startApp } from './app.js';
import { loadUsersEnv } from './env.js';

/** Starts the users service against the servers named in `env` (main.ts passes process.env; tests their own). */
export async function startUsersService(
  source: Record<string, string | undefined>,
  options: { projectorHooks?: ProjectorHooks | undefined } = {},
): Promise<RunningService<Deps>> {
  const config = loadUsersEnv(source);
  return runService<Deps>({
    name: 'users',
    env: config,
    database: { schema: SCHEMA, migrationsDir: MIGRATIONS_DIR },
    start: async (deps) => {
      if (!config.SMTP_URL) {
        deps.log.warn({ mailDir: config.MAIL_DIR }, 'SMTP_URL is not set: mails (password resets) are written as .eml files, not sent');
      }
      return startApp(deps, buildApp(deps, config, options));
    },
  });
}
