import { openDeps, type Deps } from '@parley/runtime-pg';
import { buildApp, MIGRATIONS_DIR, SCHEMA } from './app.js';
import { loadUsersEnv } from './env.js';
import { AUDIT_PROJECTION_TABLES, AUDIT_PROJECTOR } from './audit/projection.js';
import { RESETS_PROJECTION_TABLES, RESETS_PROJECTOR } from './reset/projection.js';
import { PROJECTION_TABLES } from './users/projection.js';

/** `npm run rebuild -- users`: empties the users, audit and reset-token projections and replays them from their streams. */
export async function rebuildUsers(source: Record<string, string | undefined>): Promise<number> {
  const config = loadUsersEnv(source);
  const opened = await openDeps<Deps>({ name: 'users-rebuild', principal: 'users', env: config, database: { schema: SCHEMA, migrationsDir: MIGRATIONS_DIR } });
  try {
    const app = buildApp(opened.deps, config);
    let events = await app.projector.rebuild(PROJECTION_TABLES);
    const audit = app.projectors.find((p) => p.name === AUDIT_PROJECTOR);
    if (audit) events += await audit.rebuild(AUDIT_PROJECTION_TABLES);
    const resets = app.projectors.find((p) => p.name === RESETS_PROJECTOR);
    if (resets) events += await resets.rebuild(RESETS_PROJECTION_TABLES);
    return events;
  } finally {
    await opened.close();
  }
}
