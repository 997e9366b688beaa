import { publishEvent, type Bus } from '@parley/bus';
import { buildMeta, messageBodyProblem, newId, subjects, type ErasureRecorded } from '@parley/contracts';
import { InvalidRequest, NotFound } from '@parley/http';
import type { ChatCommand } from '@parley/chat-domain';
import type { AppendDeps } from '../chats/append.js';
import { basisWith, precheck, writeChat, type WriteDeps } from '../chats/write.js';
import { carriesAttachments } from '../attachments/queries.js';
import { lookupMessage } from './lookup.js';
import { findMessage, messageColumns, type MessageRow } from './queries.js';

export async function editMessage(deps: AppendDeps & WriteDeps & { maxChars: number }, userId: string, messageId: string, body: string, correlationId: string): Promise<MessageRow> {
  const message = await lookupMessage(deps, messageId);
  if (!message) throw new NotFound('No such message');
  const command: ChatCommand = { type: 'EditMessage', actorId: userId, messageId, body };
  const basis = await basisWith(deps.pool, message.chat_id, { message });
  precheck(command, basis);
  // The send's rules (api.md): blank only with attachments, which an edit keeps. Refusing every
  // blank edit made a caption impossible to remove from a file.
  const problem = messageBodyProblem(body, deps.maxChars, await carriesAttachments(deps.pool, messageId));
  if (problem) throw new InvalidRequest(problem);
  await writeChat(deps, message.chat_id, command, { msgId: `edit:${messageId}:${correlationId}`, actorId: userId, correlationId, basis });
  return (await findMessage(deps.pool, messageId))!;
}

/** Deletes by the author, or by an owner or admin of a group. Leaves a tombstone event. */
export async function deleteMessage(deps: AppendDeps & WriteDeps & { bus: Bus }, userId: string, messageId: string, correlationId: string): Promise<void> {
  const message = await lookupMessage(deps, messageId);
  if (!message) throw new NotFound('No such message');
  const original = { clientMsgId: message.client_msg_id, createdAt: message.created_at.toISOString() };
  const command: ChatCommand = { type: 'DeleteMessage', actorId: userId, messageId, original };
  const basis = await basisWith(deps.pool, message.chat_id, { message });
  // Decided before the ledger entry, which must precede the event (a backup taken in between is
  // scrubbed on restore); the writer decides again, so a race lost here leaves a ledger entry for a
  // message that stays: a restore would then delete it again (the safe side for personal data).
  precheck(command, basis);
  const ledger: ErasureRecorded = {
    type: 'ErasureRecorded',
    version: 1,
    data: { kind: 'message', chatId: message.chat_id, messageId },
    meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: userId, correlationId }),
  };
  await publishEvent(deps.bus.js, subjects.erasedMessage(deps.namespace, messageId), ledger, { msgId: `erasure:message:${messageId}` });
  await writeChat(deps, message.chat_id, command, { msgId: `delete:${messageId}`, actorId: userId, correlationId, basis });
}

/**
 * Deletes again the messages of the erasure ledger that a restored backup brought back (the
 * retention pass calls this through `messages.redelete`). Returns how many were still present.
 */
export async function redeleteMessages(deps: WriteDeps, messageIds: string[]): Promise<number> {
  const { rows } = await deps.pool.query<MessageRow>(`SELECT ${messageColumns('m')} FROM messages.messages m WHERE m.id = ANY($1::uuid[]) AND m.deleted_at IS NULL`, [messageIds]);
  for (const row of rows) {
    const correlationId = newId();
    const command: ChatCommand = { type: 'RedeleteMessage', messageId: row.id, original: { clientMsgId: row.client_msg_id, createdAt: row.created_at.toISOString() } };
    await writeChat(deps, row.chat_id, command, { msgId: `redelete:${row.id}:${correlationId}`, actorId: row.sender_id, correlationId, basis: await basisWith(deps.pool, row.chat_id, { message: row }) });
  }
  return rows.length;
}
