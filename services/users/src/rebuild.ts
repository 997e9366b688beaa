import { openDeps, type Deps } from '@parley/runtime';
import { buildApp, MIGRATIONS_DIR, SCHEMA } from './app.js';
import { loadUsersEnv } from './env.js';
import { PROJECTION_TABLES } from './users/projection.js';

/** `npm run rebuild -- users`: empties the users projection and replays it from the users stream. */
export async function rebuildUsers(source: Record<string, string | undefined>): Promise<number> {
  const config = loadUsersEnv(source);
  const opened = await openDeps<Deps>({ name: 'users-rebuild', env: config, database: { schema: SCHEMA, migrationsDir: MIGRATIONS_DIR } });
  try {
    return await buildApp(opened.deps, config).projector.rebuild(PROJECTION_TABLES);
  } finally {
    await opened.close();
  }
}
