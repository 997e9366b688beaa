import type { ChatCommand } from '@parley/chat-domain';
import { senderBasis, type ChatWriter } from '@parley/chat-writer';
import { messageBodyProblem, messageViewFromEvent, newId, sendMessageId, type MessageSent, type MessageView, type SendMessageBody } from '@parley/contracts';
import { InvalidRequest, NotFound } from '@parley/http';
import { refusalError } from '../chats/write.js';
import type { Pool } from '@parley/pg';
import { membershipAt } from '../chats/queries.js';
import { usableAttachments } from '../attachments/queries.js';
import { lookupMessage } from './lookup.js';
import { findByClientMsgId, messageViews } from './queries.js';

export interface SendDeps {
  pool: Pool;
  namespace: string;
  writer: ChatWriter;
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
  const membership = await membershipAt(deps.pool, chatId, senderId);
  if (!membership.member) throw new NotFound('No such chat');
  const attachmentIds = input.attachmentIds ?? [];
  const problem = messageBodyProblem(input.body, deps.maxChars, attachmentIds.length > 0);
  if (problem) throw new InvalidRequest(problem);
  const attachments = await usableAttachments(deps.pool, attachmentIds, senderId);
  if (!attachments) throw new InvalidRequest('Unknown attachment');
  const replyTo = input.replyTo ?? null;
  if (replyTo) {
    const target = await lookupMessage(deps, replyTo);
    // A deleted message is not visible (api.md): its tombstone row is no reply target either.
    if (!target || target.chat_id !== chatId || target.deleted_at) throw new InvalidRequest('replyTo must be a message of the same chat');
  }
  const earlier = await findByClientMsgId(deps.pool, chatId, senderId, input.clientMsgId);
  if (earlier) return { message: (await messageViews(deps.pool, [earlier], senderId))[0]!, duplicate: true };

  // Decided against the projection's membership as of its seq plus every event stored since, and
  // again after a conflict (ChatWriter): a sender removed meanwhile is refused (issue 17).
  const command: ChatCommand = {
    type: 'SendMessage',
    actorId: senderId,
    data: { messageId: newId(), clientMsgId: input.clientMsgId, body: input.body, replyTo, attachmentIds, ...(attachments.length > 0 ? { attachments } : {}) },
  };
  const appended = await deps.writer.execute(chatId, command, senderBasis(senderId, membership.seq, replyTo), {
    msgId: sendMessageId(chatId, senderId, input.clientMsgId),
    actorId: senderId,
    correlationId,
  });
  if ('refusal' in appended) throw appended.refusal.ok ? new NotFound('No such chat') : refusalError(appended.refusal);
  return { message: messageViewFromEvent(appended.event as MessageSent), duplicate: appended.duplicate };
}
