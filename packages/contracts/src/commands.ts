import { Type, type Static } from '@sinclair/typebox';
import { buildMeta } from './envelope.js';
import { Uuid } from './ids.js';
import type { MessageSent } from './events/chats.js';

/** The files one message may carry: the send frame's and the `messages.attachmentsUsable` request's limit. */
export const AttachmentIds = Type.Array(Uuid, { maxItems: 10, uniqueItems: true });

/**
 * Commands clients send. The WebSocket `send` frame and `POST /chats/:id/messages` carry the same
 * fields and are validated by the same schema, so both routes accept and refuse exactly alike.
 */
export const SendMessageFields = {
  // `poll-…` is what a poll is stored under (POST /chats/:id/polls): a send with one would be acked
  // and delivered, then refused by history as the poll's own (and counted as a NATS seq collision).
  clientMsgId: Type.String({ minLength: 1, maxLength: 64, pattern: '^(?!poll-)[A-Za-z0-9_.:-]+$' }),
  // The configurable limit (MESSAGE_MAX_CHARS) is checked in code; this bound only keeps junk out.
  body: Type.String({ maxLength: 65_536 }),
  replyTo: Type.Optional(Type.Union([Uuid, Type.Null()])),
  attachmentIds: Type.Optional(AttachmentIds),
};

export const SendMessageBody = Type.Object(SendMessageFields, { additionalProperties: false });
export type SendMessageBody = Static<typeof SendMessageBody>;

/** Why a message body is refused, or null when it is fine. Length counts Unicode code points. */
export function messageBodyProblem(body: string, maxChars: number, hasAttachments: boolean): string | null {
  if (body.trim().length === 0 && !hasAttachments) return 'body must not be empty';
  let chars = 0;
  for (const _ of body) {
    if (++chars > maxChars) return `body is longer than ${maxChars} characters`;
  }
  return null;
}

/** `Nats-Msg-Id` of a send: the same client retry maps to the same id, so JetStream stores it once. */
export function sendMessageId(chatId: string, senderId: string, clientMsgId: string): string {
  return `send:${chatId}:${senderId}:${clientMsgId}`;
}

export interface SendMessageCommand {
  chatId: string;
  senderId: string;
  messageId: string;
  clientMsgId: string;
  body: string;
  replyTo: string | null;
  attachmentIds: string[];
  /** Metadata of the attachments, resolved by whoever validated them. */
  attachments?: { id: string; name: string; size: number; mime: string }[];
  at: Date;
  eventId: string;
  correlationId: string;
}

/** The event a validated, authorized send produces, given the seq the sequencer assigned. */
export function messageSent(command: SendMessageCommand, seq: number): MessageSent {
  return {
    type: 'MessageSent',
    version: 1,
    chatId: command.chatId,
    seq,
    data: {
      messageId: command.messageId,
      senderId: command.senderId,
      clientMsgId: command.clientMsgId,
      body: command.body,
      replyTo: command.replyTo,
      attachmentIds: command.attachmentIds,
      ...(command.attachments && command.attachments.length > 0 ? { attachments: command.attachments } : {}),
    },
    meta: buildMeta({ eventId: command.eventId, occurredAt: command.at, actorId: command.senderId, correlationId: command.correlationId }),
  };
}
