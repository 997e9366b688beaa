import { Type, type Static } from '@sinclair/typebox';
import { chatEventSchema, eventSchema } from '../envelope.js';

export const ChatType = Type.Union([Type.Literal('direct'), Type.Literal('group')]);
export type ChatType = Static<typeof ChatType>;

export const MemberRole = Type.Union([Type.Literal('owner'), Type.Literal('admin'), Type.Literal('member')]);
export type MemberRole = Static<typeof MemberRole>;

export const ChatMember = Type.Object(
  { userId: Type.String(), role: MemberRole },
  { additionalProperties: false },
);
export type ChatMember = Static<typeof ChatMember>;

/** Always the first event (seq 1) on a chat's subject. */
export const ChatCreated = chatEventSchema(
  'ChatCreated',
  1,
  Type.Object(
    {
      type: ChatType,
      title: Type.Union([Type.String(), Type.Null()]),
      members: Type.Array(ChatMember),
      createdBy: Type.String(),
    },
    { additionalProperties: false },
  ),
);
export type ChatCreated = Static<typeof ChatCreated>;

export const MessageSent = chatEventSchema(
  'MessageSent',
  1,
  Type.Object(
    {
      messageId: Type.String(),
      senderId: Type.String(),
      clientMsgId: Type.String(),
      body: Type.String(),
      replyTo: Type.Union([Type.String(), Type.Null()]),
      attachmentIds: Type.Array(Type.String()),
    },
    { additionalProperties: false },
  ),
);
export type MessageSent = Static<typeof MessageSent>;

/**
 * The claim that makes "one direct chat per pair" hold across replicas: published on the pair's
 * subject with an expected last subject sequence of 0; the loser reads the winner's chatId.
 */
export const DirectChatClaimed = eventSchema(
  'DirectChatClaimed',
  1,
  Type.Object({ chatId: Type.String(), userIds: Type.Array(Type.String()) }, { additionalProperties: false }),
);
export type DirectChatClaimed = Static<typeof DirectChatClaimed>;

export const ChatEvents = [ChatCreated, MessageSent] as const;
/** Every event that can appear on a chat's subject; switches over it end in a `never` check. */
export type ChatEvent = ChatCreated | MessageSent;
