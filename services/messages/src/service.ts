import { runService, type Deps, type RunningService } from '@parley/runtime-pg';
import { buildApp, MIGRATIONS_DIR, SCHEMA, startApp, type AppOptions } from './app.js';
import { loadMessagesEnv } from './env.js';

/** Starts the messages service against the servers named in `source` (main.ts passes process.env; tests their own). */
export async function startMessagesService(source: Record<string, string | undefined>, options: AppOptions = {}): Promise<RunningService<Deps>> {
  const config = loadMessagesEnv(source);
  return runService<Deps>({
    name: 'messages',
    env: config,
    database: { schema: SCHEMA, migrationsDir: MIGRATIONS_DIR },
    start: async (deps) => startApp(deps, buildApp(deps, config, options), options),
  });
}
