import { deleteStreamSequences, findChatEventAfter, readStored, type Bus } from '@parley/bus';
import type { ChatWriter } from '@parley/chat-writer';
import { parseChatEvent, streamName, subjects } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Pool } from '@parley/pg';
import type { Metrics } from '@parley/telemetry';
import { QueueReactor } from './queue.js';

/**
 * The JetStream message id of a repair: one per lost copy (its stream sequence), never the lost
 * copy's own (send:…, or an earlier repair's). A retry of the same row within the duplicate window
 * gets its earlier repair back; a repaired copy that lost its seq again is repaired under an id of
 * its own (one per message would be answered with that lost copy itself).
 */
export const repairMessageId = (chatId: string, lostStreamSeq: number): string => `seq-repair:${chatId}:${lostStreamSeq}`;

/** How long after its send a lost copy that the stream does not return is looked for again. */
export const GIVE_UP_MS = 10 * 60_000;

/**
 * Appends again the messages the store lost the seq of (two events with one chat seq, NATS 2.9.10:
 * docs/reliability.md). The chats projection queues each in `messages.seq_repairs` in the
 * transaction that finds it; this reads the lost copy from the chats stream by its stream sequence
 * and appends the same event under the chat's next seq through the chat writer (ChatWriter.repair:
 * the expected-last-subject-sequence append, built on the chat's events after the lost seq, none
 * if one of them already is this message). Once that is acknowledged, the lost copy leaves the
 * stream (the content lives on in the repaired copy: a later deletion, erasure or replay meets it
 * once), and only then the row goes. At least once: a crash anywhere leaves the row, and the next
 * drain finds the repair already stored (decided from the stream, not from the projection, which
 * may trail it) or the lost copy already gone.
 */
export function seqRepairReactor(deps: { pool: Pool; bus: Bus; namespace: string; log: Logger; metrics: Metrics; writer: ChatWriter }): QueueReactor {
  const stream = streamName(deps.namespace, 'chats');
  return new QueueReactor(deps, {
    name: 'seq-repair',
    table: 'messages.seq_repairs',
    // One row per lost copy: a repaired copy that loses its seq again is a row of its own.
    key: 'stream_seq',
    columns: ['message_id', 'chat_id', 'seq', 'queued_at'],
    batch: 50,
    async act(rows) {
      const kept: unknown[] = [];
      for (const row of rows) {
        const [chatId, messageId, lostSeq, lostStreamSeq] = [String(row.chat_id), String(row.message_id), Number(row.seq), Number(row.stream_seq)];
        const ids = { chatId, messageId, lostSeq, lostStreamSeq };
        const stored = await readStored<unknown>(deps.bus.jsm, stream, { seq: lostStreamSeq }).catch((error: unknown) => {
          if (/no message found|not found/i.test((error as Error).message)) return null;
          throw error;
        });
        const parsed = stored ? parseChatEvent(stored.value) : null;
        const lost = parsed?.ok ? parsed.event : null;
        if (!lost || (lost.type !== 'MessageSent' && lost.type !== 'PollPosted') || lost.chatId !== chatId || lost.data.messageId !== messageId) {
          // Gone from the stream since (an earlier drain removed it after the repair), or not this
          // message. Or not readable yet: on NATS 2.9.10 a stream leader elected in the turmoil
          // that made the collision answered "no message" for a copy the stream held a moment
          // later (e2e/faults/cluster.test.ts, leader frozen), and dropping the row lost the
          // message. So, unless the repair is there already, the row stays for the next drain
          // (every 5 s), until GIVE_UP_MS after the send; then the copy counts as gone.
          const age = Date.now() - new Date(String(row.queued_at)).getTime();
          const repaired = await findChatEventAfter(deps.bus, stream, subjects.chat(deps.namespace, chatId), lostStreamSeq, (e) => (e.type === 'MessageSent' || e.type === 'PollPosted') && e.data.messageId === messageId);
          if (!repaired && age < GIVE_UP_MS) {
            deps.log.warn(ids, 'seq repair: the lost copy cannot be read from the chats stream yet; kept for the next drain');
            kept.push(row.stream_seq);
            continue;
          }
          deps.log.warn(ids, 'seq repair: the lost copy is no longer in the chats stream; nothing to append');
          deps.metrics.chatSeqRepairs.inc({ outcome: 'gone' });
          continue;
        }
        const appended = await deps.writer.repair(lost, repairMessageId(chatId, lostStreamSeq));
        // Never take the lost copy for its own repair (the row stays, and the drain is retried).
        if (!('refusal' in appended) && appended.streamSeq === lostStreamSeq) throw new Error(`seq repair of stream seq ${lostStreamSeq} answered with the lost copy itself`);
        if ('refusal' in appended) {
          deps.log.info({ ...ids, reason: appended.refusal }, 'seq repair: nothing to append');
          deps.metrics.chatSeqRepairs.inc({ outcome: appended.refusal });
        } else {
          // Ids and seqs only, never the body. A duplicate is this row's earlier repair (a retry after a crash).
          deps.log.warn({ ...ids, seq: appended.event.seq, streamSeq: appended.streamSeq, duplicate: appended.duplicate }, 'seq repair: lost message appended again under a new seq');
          deps.metrics.chatSeqRepairs.inc({ outcome: appended.duplicate ? 'repaired' : 'appended' });
        }
        await deleteStreamSequences(deps.bus.jsm, stream, [lostStreamSeq], 1);
      }
      return kept;
    },
  });
}
