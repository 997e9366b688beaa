import type { Sequencer } from '@parley/bus';
import {
  messageBodyProblem,
  messageSent,
  messageViewFromEvent,
  newId,
  sendMessageId,
  subjects,
  type MessageSent,
  type MessageView,
  type SendMessageBody,
} from '@parley/contracts';
import { InvalidRequest, NotFound } from '@parley/http';
import type { Pool } from '@parley/pg';
import { isMember } from '../chats/queries.js';
import { usableAttachments } from '../attachments/queries.js';
import { lookupMessage } from './lookup.js';
import { findByClientMsgId, messageViews } from './queries.js';

export interface SendDeps {
  pool: Pool;
  namespace: string;
  sequencer: Sequencer;
  maxChars: number;
  barrier: () => Promise<unknown>;
}

/**
 * Sends a message over HTTP (`POST /chats/:id/messages`): the same validation and event as the
 * WebSocket `send`, plus a projection lookup that makes a clientMsgId retry idempotent even after
 * JetStream's two-minute dedup window has passed.
 */
export async function sendMessage(
  deps: SendDeps,
  senderId: string,
  chatId: string,
  input: SendMessageBody,
  correlationId: string,
): Promise<{ message: MessageView; duplicate: boolean }> {
  if (!(await isMember(deps.pool, chatId, senderId))) throw new NotFound('No such chat');
  const attachmentIds = input.attachmentIds ?? [];
  const problem = messageBodyProblem(input.body, deps.maxChars, attachmentIds.length > 0);
  if (problem) throw new InvalidRequest(problem);
  const attachments = await usableAttachments(deps.pool, attachmentIds, senderId);
  if (!attachments) throw new InvalidRequest('Unknown attachment');
  const replyTo = input.replyTo ?? null;
  if (replyTo) {
    const target = await lookupMessage(deps, replyTo);
    if (!target || target.chat_id !== chatId) throw new InvalidRequest('replyTo must be a message of the same chat');
  }
  const earlier = await findByClientMsgId(deps.pool, chatId, senderId, input.clientMsgId);
  if (earlier) return { message: (await messageViews(deps.pool, [earlier], senderId))[0]!, duplicate: true };

  const command = {
    chatId,
    senderId,
    messageId: newId(),
    clientMsgId: input.clientMsgId,
    body: input.body,
    replyTo,
    attachmentIds,
    attachments,
    at: new Date(),
    eventId: newId(),
    correlationId,
  };
  const appended = await deps.sequencer.append<MessageSent>(
    subjects.chat(deps.namespace, chatId),
    sendMessageId(chatId, senderId, input.clientMsgId),
    (seq) => messageSent(command, seq),
  );
  return { message: messageViewFromEvent(appended.event), duplicate: appended.duplicate };
}
