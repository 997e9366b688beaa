import { deleteStreamSequences, type Bus } from '@parley/bus';
import { streamName } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Pool } from '@parley/pg';
import { QueueReactor } from './queue.js';

/**
 * Removes deleted content from the chats stream: the chats projection queues the stream sequences
 * of a deleted message's original and edits in `messages.stream_deletions`, in the transaction
 * that writes the tombstone. A sequence already gone counts as done.
 */
export function streamContentReactor(deps: { pool: Pool; bus: Bus; namespace: string; log: Logger }): QueueReactor {
  return new QueueReactor(deps, {
    name: 'stream-content',
    table: 'messages.stream_deletions',
    key: 'stream_seq',
    async act(rows) {
      await deleteStreamSequences(deps.bus.jsm, streamName(deps.namespace, 'chats'), rows.map((r) => Number(r.stream_seq)), 8);
    },
  });
}
