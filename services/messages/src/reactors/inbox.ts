import type { Bus } from '@parley/bus';
import type { Logger } from '@parley/log';
import type { Pool } from '@parley/pg';
import { notifyNewMembers } from '../chats/notify.js';
import { QueueReactor } from './queue.js';

/**
 * Publishes the notices the chats projection queued for users added to a chat (ChatCreated,
 * MemberAdded), then flushes the connection before the rows go: the reliable path. The commands
 * also send the same notice right after their append (the fast path, for latency); a gateway
 * treats a repeated notice as a no-op (it joins again and reads from the same seq).
 */
export function inboxNoticeReactor(deps: { pool: Pool; bus: Bus; namespace: string; log: Logger }): QueueReactor {
  return new QueueReactor(deps, {
    name: 'inbox-notice',
    table: 'messages.inbox_notices',
    key: 'stream_seq',
    columns: ['chat_id', 'seq', 'user_ids'],
    async act(rows) {
      for (const row of rows) notifyNewMembers(deps.bus, deps.namespace, String(row.chat_id), Number(row.seq), row.user_ids as string[]);
      await deps.bus.nc.flush();
    },
  });
}
