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
      /** The attachments' metadata as it was when sent, so live events and replays need no lookup. */
      attachments: Type.Optional(
        Type.Array(
          Type.Object({ id: Type.String(), name: Type.String(), size: Type.Integer(), mime: Type.String() }, { additionalProperties: false }),
        ),
      ),
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

export const ChatRenamed = chatEventSchema(
  'ChatRenamed',
  1,
  Type.Object({ title: Type.String(), renamedBy: Type.String() }, { additionalProperties: false }),
);
export type ChatRenamed = Static<typeof ChatRenamed>;

export const MemberAdded = chatEventSchema(
  'MemberAdded',
  1,
  Type.Object({ userId: Type.String(), role: MemberRole, addedBy: Type.String() }, { additionalProperties: false }),
);
export type MemberAdded = Static<typeof MemberAdded>;

/** A member left or was removed. When the owner leaves, `newOwnerId` names the member promoted in the same event. */
export const MemberRemoved = chatEventSchema(
  'MemberRemoved',
  1,
  Type.Object(
    {
      userId: Type.String(),
      removedBy: Type.String(),
      reason: Type.Union([Type.Literal('left'), Type.Literal('removed')]),
      newOwnerId: Type.Union([Type.String(), Type.Null()]),
    },
    { additionalProperties: false },
  ),
);
export type MemberRemoved = Static<typeof MemberRemoved>;

export const MessageEdited = chatEventSchema(
  'MessageEdited',
  1,
  Type.Object({ messageId: Type.String(), body: Type.String(), editedBy: Type.String() }, { additionalProperties: false }),
);
export type MessageEdited = Static<typeof MessageEdited>;

/**
 * The tombstone: the message's body, reactions, poll and search entry are gone after it. The
 * original `MessageSent` (and its edits) are deleted from the stream too, so the tombstone carries
 * what a replay needs to keep the row in history without its content: the original's seq, sender,
 * clientMsgId and time. (Optional: tombstones stored before this field existed lack it.)
 */
export const MessageDeleted = chatEventSchema(
  'MessageDeleted',
  1,
  Type.Object(
    {
      messageId: Type.String(),
      deletedBy: Type.String(),
      original: Type.Optional(
        Type.Object(
          { seq: Type.Integer({ minimum: 1 }), senderId: Type.String(), clientMsgId: Type.String(), createdAt: Type.String() },
          { additionalProperties: false },
        ),
      ),
    },
    { additionalProperties: false },
  ),
);
export type MessageDeleted = Static<typeof MessageDeleted>;

export const ReactionAdded = chatEventSchema(
  'ReactionAdded',
  1,
  Type.Object({ messageId: Type.String(), userId: Type.String(), emoji: Type.String() }, { additionalProperties: false }),
);
export type ReactionAdded = Static<typeof ReactionAdded>;

export const ReactionRemoved = chatEventSchema(
  'ReactionRemoved',
  1,
  Type.Object({ messageId: Type.String(), userId: Type.String(), emoji: Type.String() }, { additionalProperties: false }),
);
export type ReactionRemoved = Static<typeof ReactionRemoved>;

export const PollOption = Type.Object({ id: Type.String(), text: Type.String() }, { additionalProperties: false });

/** A message that carries a poll (api.md: POST /chats/:id/polls answers with the message). */
export const PollPosted = chatEventSchema(
  'PollPosted',
  1,
  Type.Object(
    {
      messageId: Type.String(),
      senderId: Type.String(),
      clientMsgId: Type.String(),
      pollId: Type.String(),
      question: Type.String(),
      options: Type.Array(PollOption),
      multiple: Type.Boolean(),
    },
    { additionalProperties: false },
  ),
);
export type PollPosted = Static<typeof PollPosted>;

/** A member's current choice in a poll (replaces their previous one; empty withdraws the vote). */
export const PollVoted = chatEventSchema(
  'PollVoted',
  1,
  Type.Object(
    { pollId: Type.String(), messageId: Type.String(), userId: Type.String(), optionIds: Type.Array(Type.String()) },
    { additionalProperties: false },
  ),
);
export type PollVoted = Static<typeof PollVoted>;

export const PollClosed = chatEventSchema(
  'PollClosed',
  1,
  Type.Object({ pollId: Type.String(), messageId: Type.String(), closedBy: Type.String() }, { additionalProperties: false }),
);
export type PollClosed = Static<typeof PollClosed>;

/**
 * The retention service's deletion event: every message-class event of this chat up to `upToSeq`
 * (all older than `cutoff`) is past MESSAGE_RETENTION_DAYS. The projection deletes those messages with
 * their reactions, polls, votes, attachment files and search entries; the retention service then
 * deletes the events themselves from the stream. It takes a chat seq like any chat event, so it
 * becomes the subject's head and the seq chain survives the deletion of everything before it.
 */
export const MessagesExpired = chatEventSchema(
  'MessagesExpired',
  1,
  Type.Object({ upToSeq: Type.Integer({ minimum: 0 }), cutoff: Type.String() }, { additionalProperties: false }),
);
export type MessagesExpired = Static<typeof MessagesExpired>;

/**
 * A person's account was erased (DELETE /users/me): they leave the chat, and with `purged` every
 * message, reaction and vote of theirs in it goes too (otherwise their messages stay, shown under
 * the "deleted account" identity).
 */
export const MemberErased = chatEventSchema(
  'MemberErased',
  1,
  Type.Object({ userId: Type.String(), purged: Type.Boolean(), newOwnerId: Type.Union([Type.String(), Type.Null()]) }, { additionalProperties: false }),
);
export type MemberErased = Static<typeof MemberErased>;

/**
 * A chat's structure folded up to chat seq `seq` (issue 18): what its ChatCreated, ChatRenamed,
 * MemberAdded, MemberRemoved and MemberErased events up to there came to. The retention service
 * writes it on `<ns>.chatsnap.<chatId>` (one per chat: once a new one is stored, the older ones are
 * deleted) before it purges every chat event older than the cutoff in one request, so a chat keeps its
 * members, title and next seq when its old events are gone. Not a chat event: it takes no seq and is
 * never delivered; a rebuild applies it before replaying the chat's remaining events, and the chat
 * writer continues from `seq` when the chat's subject is empty.
 */
export const ChatSnapshot = eventSchema(
  'ChatSnapshot',
  1,
  Type.Object(
    {
      chatId: Type.String(),
      seq: Type.Integer({ minimum: 1 }),
      type: ChatType,
      title: Type.Union([Type.String(), Type.Null()]),
      createdBy: Type.String(),
      createdAt: Type.String(),
      /** The latest activity (creation, message, poll, member added) up to `seq`: the chat list's order. */
      lastActivityAt: Type.String(),
      /** A direct chat's two users as created (the pair that may have only this direct chat); null for a group. */
      pair: Type.Union([Type.Array(Type.String(), { minItems: 2, maxItems: 2 }), Type.Null()]),
      members: Type.Array(Type.Object({ userId: Type.String(), role: MemberRole, joinedSeq: Type.Integer({ minimum: 0 }) }, { additionalProperties: false })),
    },
    { additionalProperties: false },
  ),
);
export type ChatSnapshot = Static<typeof ChatSnapshot>;

export const ChatEvents = [
  ChatCreated,
  MessageSent,
  ChatRenamed,
  MemberAdded,
  MemberRemoved,
  MessageEdited,
  MessageDeleted,
  ReactionAdded,
  ReactionRemoved,
  PollPosted,
  PollVoted,
  PollClosed,
  MessagesExpired,
  MemberErased,
] as const;
/** Every event that can appear on a chat's subject; switches over it end in a `never` check. */
export type ChatEvent =
  | ChatCreated
  | MessageSent
  | ChatRenamed
  | MemberAdded
  | MemberRemoved
  | MessageEdited
  | MessageDeleted
  | ReactionAdded
  | ReactionRemoved
  | PollPosted
  | PollVoted
  | PollClosed
  | MessagesExpired
  | MemberErased;

/**
 * Read receipts live in a stream of their own (their retention class: READ_RECEIPT_RETENTION_DAYS,
 * one message per member and chat). They are not chat events and take no chat seq: a receipt
 * moving forward is not a change to the chat's history.
 */
export const ReadPositionUpdated = eventSchema(
  'ReadPositionUpdated',
  1,
  Type.Object({ chatId: Type.String(), userId: Type.String(), seq: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
);
export type ReadPositionUpdated = Static<typeof ReadPositionUpdated>;
/** Retention: read positions last moved before `cutoff` are past READ_RECEIPT_RETENTION_DAYS. */
export const ReadPositionsExpired = eventSchema('ReadPositionsExpired', 1, Type.Object({ cutoff: Type.String() }, { additionalProperties: false }));
export type ReadPositionsExpired = Static<typeof ReadPositionsExpired>;
/**
 * Account erasure: every read position of the person goes. Published by the messages service's
 * erasure reactor after it purged the person's receipts from the stream (ids only).
 */
export const ReadPositionsErased = eventSchema('ReadPositionsErased', 1, Type.Object({ userId: Type.String() }, { additionalProperties: false }));
export type ReadPositionsErased = Static<typeof ReadPositionsErased>;
export const ReceiptEvents = [ReadPositionUpdated, ReadPositionsExpired, ReadPositionsErased] as const;
export type ReceiptEvent = ReadPositionUpdated | ReadPositionsExpired | ReadPositionsErased;

/**
 * An uploaded file's metadata (the bytes are in the attachment store under the same id). It
 * belongs to no chat until a message references it.
 */
export const AttachmentUploaded = eventSchema(
  'AttachmentUploaded',
  1,
  Type.Object(
    { attachmentId: Type.String(), uploaderId: Type.String(), name: Type.String(), size: Type.Integer({ minimum: 0 }), mime: Type.String() },
    { additionalProperties: false },
  ),
);
export type AttachmentUploaded = Static<typeof AttachmentUploaded>;
/**
 * An attachment deleted: swept because no message used it within the grace period
 * (`unreferenced`), or let go of by its last message, which was deleted, expired or erased.
 */
export const AttachmentDeleted = eventSchema(
  'AttachmentDeleted',
  1,
  Type.Object(
    { attachmentId: Type.String(), reason: Type.Union([Type.Literal('unreferenced'), Type.Literal('deleted'), Type.Literal('erased'), Type.Literal('expired')]) },
    { additionalProperties: false },
  ),
);
export type AttachmentDeleted = Static<typeof AttachmentDeleted>;

export const AttachmentEvents = [AttachmentUploaded, AttachmentDeleted] as const;
export type AttachmentEvent = AttachmentUploaded | AttachmentDeleted;
