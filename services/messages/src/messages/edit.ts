import { publishEvent, type Bus } from '@parley/bus';
import { buildMeta, messageBodyProblem, newId, subjects, type ErasureRecorded, type MessageDeleted, type MessageEdited } from '@parley/contracts';
import { Forbidden, InvalidRequest, NotFound } from '@parley/http';
import { appendChatEvent, type AppendDeps } from '../chats/append.js';
import { isAdmin, requireMember } from '../chats/access.js';
import { lookupMessage } from './lookup.js';
import { findMessage, type MessageRow } from './queries.js';

/** The message if the caller may see it (member of its chat) and it is not deleted; else 404. */
export async function visibleMessage(deps: AppendDeps, userId: string, messageId: string) {
  const message = await lookupMessage(deps, messageId);
  if (!message) throw new NotFound('No such message');
  const membership = await requireMember(deps.pool, message.chat_id, userId).catch(() => {
    throw new NotFound('No such message');
  });
  if (message.deleted_at) throw new NotFound('No such message');
  return { message, membership };
}

export async function editMessage(deps: AppendDeps & { maxChars: number }, userId: string, messageId: string, body: string, correlationId: string): Promise<MessageRow> {
  const { message } = await visibleMessage(deps, userId, messageId);
  if (message.sender_id !== userId) throw new Forbidden('Only the author may edit a message');
  if (message.poll_id) throw new InvalidRequest('A poll cannot be edited');
  const problem = messageBodyProblem(body, deps.maxChars, false);
  if (problem) throw new InvalidRequest(problem);
  await appendChatEvent<MessageEdited>(deps, message.chat_id, `edit:${messageId}:${correlationId}`, userId, correlationId, {
    type: 'MessageEdited',
    data: { messageId, body, editedBy: userId },
  }, { waitForProjection: true });
  return (await findMessage(deps.pool, messageId))!;
}

/** Deletes by the author, or by an owner or admin of a group. Leaves a tombstone event. */
export async function deleteMessage(deps: AppendDeps & { bus: Bus }, userId: string, messageId: string, correlationId: string): Promise<void> {
  const { message, membership } = await visibleMessage(deps, userId, messageId);
  const mayDelete = message.sender_id === userId || (membership.chatType === 'group' && isAdmin(membership));
  if (!mayDelete) throw new Forbidden('Only the author or a group admin may delete a message');
  // The ledger first (ids only): a backup taken before this moment is scrubbed again on restore.
  const ledger: ErasureRecorded = {
    type: 'ErasureRecorded',
    version: 1,
    data: { kind: 'message', chatId: message.chat_id, messageId },
    meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: userId, correlationId }),
  };
  await publishEvent(deps.bus.js, subjects.erasedMessage(deps.namespace, messageId), ledger, { msgId: `erasure:message:${messageId}` });
  await appendChatEvent<MessageDeleted>(deps, message.chat_id, `delete:${messageId}`, userId, correlationId, {
    type: 'MessageDeleted',
    data: { messageId, deletedBy: userId, original: originalOf(message) },
  }, { waitForProjection: true });
}

/**
 * Deletes again the messages of the erasure ledger that a restored backup brought back (the
 * retention pass calls this through `messages.redelete`). Returns how many were still present.
 */
export async function redeleteMessages(deps: AppendDeps, messageIds: string[]): Promise<number> {
  const { rows } = await deps.pool.query<{ id: string; chat_id: string; sender_id: string; seq: number; client_msg_id: string; created_at: Date }>(
    'SELECT id, chat_id, sender_id, seq, client_msg_id, created_at FROM messages.messages WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL',
    [messageIds],
  );
  for (const row of rows) {
    const correlationId = newId();
    await appendChatEvent<MessageDeleted>(deps, row.chat_id, `redelete:${row.id}:${correlationId}`, row.sender_id, correlationId, {
      type: 'MessageDeleted',
      data: { messageId: row.id, deletedBy: row.sender_id, original: originalOf(row) },
    });
  }
  return rows.length;
}

/** What a tombstone keeps of the message it replaces (the stream loses the original). */
function originalOf(row: { seq: number; sender_id: string; client_msg_id: string; created_at: Date }) {
  return { seq: row.seq, senderId: row.sender_id, clientMsgId: row.client_msg_id, createdAt: row.created_at.toISOString() };
}
