import { deleteStreamSequences, purgeSubject, readStream, type Bus, type Projection, type Sequencer } from '@parley/bus';
import { buildMeta, newId, streamName, subjects, type ChatEvent, type MemberErased, type UserEvent } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type pg from 'pg';

export const ERASURE_PROCESS = 'erasure-process';

export interface ErasureDeps {
  bus: Bus;
  namespace: string;
  sequencer: Sequencer;
  log: Logger;
}

/**
 * The messages side of an account erasure: a process (not a projection) on the users stream that
 * turns UserErased into one MemberErased event per chat the person was in (or wrote in), which
 * the chats projection applies, and, when the person asked for a purge, deletes their messages,
 * edits, reactions and votes from the chats stream and their uploads' records, so that a replay
 * cannot bring them back. Idempotent: the chat events carry deterministic message ids, a deleted
 * stream message stays deleted.
 */
export function erasureProcess(deps: ErasureDeps): Projection<UserEvent> {
  return {
    name: ERASURE_PROCESS,
    async apply(event, tx) {
      if (event.type !== 'UserErased') return;
      const { userId, purgeMessages } = event.data;
      const chats = await chatsOf(tx, userId, purgeMessages);
      for (const { chatId, newOwnerId } of chats) {
        await deps.sequencer.append<MemberErased>(subjects.chat(deps.namespace, chatId), `erased:${chatId}:${userId}`, (seq) => ({
          type: 'MemberErased',
          version: 1,
          chatId,
          seq,
          data: { userId, purged: purgeMessages, newOwnerId },
          meta: buildMeta({ eventId: newId(), occurredAt: new Date(event.meta.occurredAt), actorId: null, correlationId: event.meta.correlationId }),
        }));
      }
      if (!purgeMessages) return;
      const stream = streamName(deps.namespace, 'chats');
      let deleted = 0;
      for (const { chatId } of chats) {
        const seqs = await authoredEvents(deps.bus, stream, subjects.chat(deps.namespace, chatId), userId);
        deleted += await deleteStreamSequences(deps.bus.jsm, stream, seqs, 4);
      }
      const { rows: uploads } = await tx.query<{ id: string }>('SELECT id FROM messages.attachments WHERE uploader_id = $1', [userId]);
      for (const { id } of uploads) await purgeSubject(deps.bus.jsm, stream, subjects.attachment(deps.namespace, id));
      deps.log.info({ chats: chats.length, streamEvents: deleted, uploads: uploads.length }, 'erased account purged from the chats stream');
    },
  };
}

/** The chats to leave (and, with a purge, also those the person wrote in after leaving), with the owner's successor. */
async function chatsOf(tx: pg.PoolClient, userId: string, purge: boolean): Promise<{ chatId: string; newOwnerId: string | null }[]> {
  const { rows } = await tx.query<{ chat_id: string; new_owner: string | null }>(
    `SELECT m.chat_id,
            CASE WHEN m.role = 'owner' THEN (
              SELECT o.user_id FROM messages.chat_members o WHERE o.chat_id = m.chat_id AND o.user_id <> m.user_id
               ORDER BY (o.role = 'admin') DESC, o.joined_seq, o.user_id LIMIT 1) END AS new_owner
       FROM messages.chat_members m WHERE m.user_id = $1
     UNION
     SELECT DISTINCT chat_id, NULL::uuid FROM messages.messages WHERE $2 AND sender_id = $1
       AND chat_id NOT IN (SELECT chat_id FROM messages.chat_members WHERE user_id = $1)`,
    [userId, purge],
  );
  return rows.map((r) => ({ chatId: r.chat_id, newOwnerId: r.new_owner }));
}

/** Stream sequences of the events on a chat's subject that carry what the person wrote or chose. */
async function authoredEvents(bus: Bus, stream: string, subject: string, userId: string): Promise<number[]> {
  const last = await bus.jsm.streams.getMessage(stream, { last_by_subj: subject }).catch(() => null);
  const seqs: number[] = [];
  await readStream(bus.js, stream, { lastSeq: last?.seq ?? 0, filter: subject }, (m) => {
    if (authoredBy(m.json<ChatEvent>()) === userId) seqs.push(m.seq);
  });
  return seqs;
}

function authoredBy(event: ChatEvent): string | null {
  switch (event.type) {
    case 'MessageSent':
    case 'PollPosted':
      return event.data.senderId;
    case 'MessageEdited':
      return event.data.editedBy;
    case 'ReactionAdded':
    case 'ReactionRemoved':
    case 'PollVoted':
      return event.data.userId;
    default:
      return null;
  }
}
