import { deleteStreamSequences, deleteSubjectMessages, lastOnSubject, publishEvent, readStreamSync, type Bus } from '@parley/bus';
import type { Projection } from '@parley/projector-pg';
import type { ChatWriter } from '@parley/chat-writer';
import { buildMeta, newId, streamName, subjects, type ChatEvent, type ReadPositionsErased, type UserEvent } from '@parley/contracts';
import { publishAttachmentDeleted } from './attachments/deleted.js';
import { eraseMember } from './chats/erased-members.js';
import type { Logger } from '@parley/log';
import type pg from 'pg';

export const ERASURE_PROCESS = 'erasure-process';

export interface ErasureDeps {
  bus: Bus;
  namespace: string;
  writer: ChatWriter;
  log: Logger;
  /**
   * Resolves once the chats projection holds every chat event stored before the call (false after
   * its time limit): the memberships it lists must include a member added just before the erasure
   * began (chats/erased-members.ts is the other half).
   */
  chatsCaughtUp?: () => Promise<boolean>;
}

/**
 * The messages side of an account erasure: a process (not a projection) on the users stream that
 * turns UserErased into one MemberErased event per chat the person was in (or, with a purge, wrote, reacted or voted in), which
 * the chats projection applies; purges the person's read positions from the receipts stream and
 * publishes ReadPositionsErased, which the receipts projection applies (each projection deletes
 * its own rows); and, when the person asked for a purge, deletes their messages,
 * edits, reactions and votes from the chats stream and their unsent uploads, so that a replay
 * cannot bring them back. Idempotent: the chat events carry deterministic message ids, a deleted
 * stream message stays deleted.
 */
export function erasureProcess(deps: ErasureDeps): Projection<UserEvent> {
  return {
    name: ERASURE_PROCESS,
    async apply(event, tx) {
      if (event.type !== 'UserErased') return;
      const { userId, purgeMessages } = event.data;
      if (deps.chatsCaughtUp && !(await deps.chatsCaughtUp())) {
        // Not retried: a projection far behind would make the erasure a poison message. An add
        // stored meanwhile that this misses is caught by the adder's check of the ledger, unless
        // it checked before the ledger entry was written; that rest is logged here.
        deps.log.warn({ userId }, 'erasure: the chats projection did not catch up in time; memberships may be missing a member added just now');
      }
      const chats = await chatsOf(tx, userId, purgeMessages);
      for (const chatId of chats) {
        await eraseMember(deps, tx, chatId, { userId, purged: purgeMessages }, { correlationId: event.meta.correlationId, occurredAt: new Date(event.meta.occurredAt) });
      }
      await eraseReadPositions(deps, userId, event.meta.correlationId);
      if (!purgeMessages) return;
      const stream = streamName(deps.namespace, 'chats');
      let deleted = 0;
      for (const chatId of chats) {
        const seqs = await authoredEvents(deps.bus, stream, subjects.chat(deps.namespace, chatId), userId);
        deleted += await deleteStreamSequences(deps.bus.jsm, stream, seqs, 4);
      }
      // Only those no message carries go now, row (its file name is hers) and file, through the
      // attachments projection's tombstone, not at the sweep a day later. The rest go as their
      // messages let go of them: hers through the purge above (the chats projection releases the
      // links, and the release reactor deletes a file none carries then), and a file someone
      // forwarded stays with their message until it goes, upload record included, as a rebuild
      // needs it (its record was deleted here, and a rebuild lost the file from the forward, whose
      // file the next retention pass deleted: e2e/erasure-forwarded.test.ts; docs/decisions.md).
      const { rows: uploads } = await tx.query<{ id: string }>(
        `SELECT a.id FROM messages.attachments a
          WHERE a.uploader_id = $1 AND NOT EXISTS (SELECT 1 FROM messages.message_attachments ma WHERE ma.attachment_id = a.id)`,
        [userId],
      );
      for (const { id } of uploads) await publishAttachmentDeleted(deps, id, 'erased', { actorId: null, correlationId: event.meta.correlationId });
      deps.log.info({ chats: chats.length, streamEvents: deleted, unsentUploads: uploads.length }, 'erased account purged from the chats stream');
    },
  };
}

/**
 * Deletes the person's receipts from the stream (one by one: docs/reliability.md says why not a
 * subject purge), then publishes the event that deletes their rows.
 * Its dedup id is new at every attempt on purpose: the event's subject is under the deletion's
 * filter, so a retry's deletion takes the earlier event, and the retry must store a new one.
 */
async function eraseReadPositions(deps: ErasureDeps, userId: string, correlationId: string): Promise<void> {
  await deleteSubjectMessages(deps.bus.jsm, streamName(deps.namespace, 'receipts'), subjects.userReceipts(deps.namespace, userId));
  const erased: ReadPositionsErased = {
    type: 'ReadPositionsErased',
    version: 1,
    data: { userId },
    meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: null, correlationId }),
  };
  await publishEvent(deps.bus.js, subjects.receiptErasure(deps.namespace, userId), erased, { msgId: `receipts-erased:${userId}:${erased.meta.eventId}` });
}

/**
 * The chats to leave and, with a purge, also those the person wrote, reacted or voted in and has
 * left since (their MemberErased removes what is theirs there; before, a reaction or vote in a
 * chat left earlier stayed, in history and in the stream), also a reaction or vote they took back
 * before leaving: no reactions or poll_votes row names them then, but the events that added and
 * removed it are still on the chat's subject (messages.dependent_events keeps who chose them).
 */
async function chatsOf(tx: pg.PoolClient, userId: string, purge: boolean): Promise<string[]> {
  const { rows } = await tx.query<{ chat_id: string }>(
    `SELECT chat_id FROM messages.chat_members WHERE user_id = $1
     UNION
     SELECT chat_id FROM messages.messages WHERE $2 AND sender_id = $1
     UNION
     SELECT m.chat_id FROM messages.reactions r JOIN messages.messages m ON m.id = r.message_id WHERE $2 AND r.user_id = $1
     UNION
     SELECT p.chat_id FROM messages.poll_votes v JOIN messages.polls p ON p.id = v.poll_id WHERE $2 AND v.user_id = $1
     UNION
     SELECT m.chat_id FROM messages.dependent_events d JOIN messages.messages m ON m.id = d.message_id WHERE $2 AND d.user_id = $1`,
    [userId, purge],
  );
  return rows.map((r) => r.chat_id);
}

/** Stream sequences of the events on a chat's subject that carry what the person wrote or chose. */
async function authoredEvents(bus: Bus, stream: string, subject: string, userId: string): Promise<number[]> {
  const last = await lastOnSubject(bus.jsm, stream, subject).catch(() => null);
  const seqs: number[] = [];
  await readStreamSync(bus.js, stream, { lastSeq: last?.stored.seq ?? 0, filter: subject }, (m) => {
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
