import { readStream, type Bus } from '@parley/bus';
import { parseChatSnapshot, streamName, subjects } from '@parley/contracts';
import { withTransaction, type Pool } from '@parley/pg';
import { chatsSql } from './projection.js';

/** Snapshots applied per transaction. */
const BATCH = 500;

/**
 * For a rebuild (issue 18): makes every chat whose old events retention purged from its
 * ChatSnapshot, so that the replay of the chats stream continues each one from its snapshot's seq
 * instead of meeting messages of a chat it never saw created. Returns how many it applied.
 */
export async function applySnapshots(deps: { bus: Bus; pool: Pool; namespace: string }): Promise<number> {
  const stream = streamName(deps.namespace, 'chats');
  const { state } = await deps.bus.jsm.streams.info(stream);
  let batch: { snapshot: ReturnType<typeof parseChatSnapshot>; streamSeq: number }[] = [];
  let applied = 0;
  const flush = async () => {
    const items = batch;
    batch = [];
    await withTransaction(deps.pool, async (tx) => {
      for (const { snapshot, streamSeq } of items) {
        if (!snapshot.ok) throw new Error(`unreadable chat snapshot at stream seq ${streamSeq}: ${snapshot.reason}`);
        await chatsSql.applySnapshot(snapshot.event, streamSeq, tx);
      }
    });
    applied += items.length;
  };
  await readStream(deps.bus.js, stream, { lastSeq: state.messages === 0 ? 0 : state.last_seq, filter: subjects.allChatSnapshots(deps.namespace) }, async (msg) => {
    batch.push({ snapshot: parseChatSnapshot(msg.json()), streamSeq: msg.seq });
    if (batch.length >= BATCH) await flush();
  });
  if (batch.length > 0) await flush();
  return applied;
}
