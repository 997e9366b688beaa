import { openDeps, type Deps } from '@parley/runtime-pg';
import { buildApp, MIGRATIONS_DIR, SCHEMA } from './app.js';
import { PROJECTION_TABLES } from './chats/projection.js';
import { applySnapshots } from './chats/snapshots.js';
import { loadMessagesEnv } from './env.js';
import { ATTACHMENTS_PROJECTION_TABLES } from './attachments/projection.js';
import { RECEIPTS_PROJECTION_TABLES } from './receipts/projection.js';

/** `npm run rebuild -- messages`: empties the chats/messages projection and replays it from the chats stream. */
export async function rebuildMessages(source: Record<string, string | undefined>): Promise<number> {
  const config = loadMessagesEnv(source);
  const opened = await openDeps<Deps>({ name: 'messages-rebuild', principal: 'messages', env: config, database: { schema: SCHEMA, migrationsDir: MIGRATIONS_DIR } });
  try {
    const app = buildApp(opened.deps, config);
    // Attachments first: messages refer to them.
    const attachments = await app.attachments.rebuild(ATTACHMENTS_PROJECTION_TABLES);
    // Chats whose old events retention purged start from their snapshots (issue 18).
    const chats = await app.projector.rebuild(PROJECTION_TABLES, undefined, async () => {
      await applySnapshots(opened.deps);
    });
    const replayed = attachments + chats + (await app.receipts.rebuild(RECEIPTS_PROJECTION_TABLES));
    // The replay queued a "start following" notice for every member ever added: history, not news.
    // (The other queues stay: what they hold must still happen.)
    await opened.deps.pool.query('DELETE FROM messages.inbox_notices');
    return replayed;
  } finally {
    await opened.close();
  }
}
