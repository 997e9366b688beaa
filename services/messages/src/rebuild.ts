import { openDeps, type Deps } from '@parley/runtime';
import { buildApp, MIGRATIONS_DIR, SCHEMA } from './app.js';
import { PROJECTION_TABLES } from './chats/projection.js';
import { loadMessagesEnv } from './env.js';

/** `npm run rebuild -- messages`: empties the chats/messages projection and replays it from the chats stream. */
export async function rebuildMessages(source: Record<string, string | undefined>): Promise<number> {
  const config = loadMessagesEnv(source);
  const opened = await openDeps<Deps>({ name: 'messages-rebuild', env: config, database: { schema: SCHEMA, migrationsDir: MIGRATIONS_DIR } });
  try {
    return await buildApp(opened.deps, config).projector.rebuild(PROJECTION_TABLES);
  } finally {
    await opened.close();
  }
}
