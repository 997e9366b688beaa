import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { SignedRequest } from './api.js';
import { AttachmentIds, SendMessageFields } from './commands.js';
import { Uuid } from './ids.js';
import { compile, type Validator } from './validate.js';

/**
 * Internal request/reply methods between services (subjects.rpc): one TypeBox schema pair per
 * method. The responder checks every request against `req` before its handler runs, and the caller
 * checks every reply against `res` (packages/bus/src/rpc.ts), so the TypeScript types below and
 * what is checked at run time are the same definition and cannot drift apart. Objects refuse
 * unknown fields both ways: a request cannot smuggle in what the handler does not expect, and a
 * reply cannot carry more than its callers may pass on (the gateway hands some to clients as is).
 */

/** Most sends one `messages.sentMessages` call looks up. */
export const MAX_SENT_LOOKUPS = 500;

/** Most ids (or chats) one `users.existing`, `messages.redelete` or `messages.retentionPreview` call carries. */
export const MAX_RPC_BATCH = 1000;

/** Most users one `messages.socketSetups` or `users.presenceVisibleMany` call asks about (a gateway's batch of set-ups). */
export const MAX_SETUP_BATCH = 50;

/** Most chat peers one user's set-up names (the presence snapshot's audience is capped there). */
export const MAX_CHAT_PEERS = 5000;

/**
 * About how many bytes of ids one set-up answer holds before the service stops adding users to it:
 * the rest are asked for again. Far inside NATS's default 1 MiB payload, whatever the batch, and
 * under glibc's 128 KiB mmap threshold: a larger buffer, once freed, raises that threshold, and
 * later buffers of its size then come from the heap and stay in the process. With answers of up
 * to 256 KiB a gateway's memory after a reconnect storm of 20,000 sockets grew 1.9-3.0 KiB per
 * socket, against 1.0 KiB with the threshold pinned (MALLOC_MMAP_THRESHOLD_; docs/performance.md).
 */
export const SETUP_ANSWER_BYTES = 48 * 1024;

/** Bytes of JSON one id takes in an answer: 36 characters, quotes and a comma (a seq beside a chat id fits in it too). */
const ID_BYTES = 39;

/** The first of `answers` whose ids fit in `budgetBytes`, and always the first one (a set-up answer's cut). */
export function answersWithin<T>(answers: T[], idsOf: (answer: T) => number, budgetBytes = SETUP_ANSWER_BYTES): T[] {
  let bytes = 0;
  for (let i = 0; i < answers.length; i++) {
    bytes += idsOf(answers[i]!) * ID_BYTES;
    if (bytes > budgetBytes && i > 0) return answers.slice(0, i);
  }
  return answers;
}

/** A time as `Date.toISOString()` writes it (TypeBox's compiler knows no `format` unless one is registered). */
const Timestamp = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$' });
const Seq = Type.Integer({ minimum: 0 });
const Count = Type.Integer({ minimum: 0 });

const strict = { additionalProperties: false } as const;
const Empty = Type.Object({}, strict);
const Pong = Type.Object({ ok: Type.Literal(true) }, strict);
const UserIds = (options: { maxItems?: number } = {}) => Type.Object({ userIds: Type.Array(Uuid, options) }, strict);

/** An attachment's metadata as the messages service answers it (the bytes are in the store). */
const AttachmentView = Type.Object({ id: Uuid, name: Type.String(), size: Type.Integer({ minimum: 0 }), mime: Type.String() }, strict);

export const MessagesRetentionCounts = Type.Object(
  { messages: Count, reactions: Count, polls: Count, pollVotes: Count, attachments: Count, readReceipts: Count },
  strict,
);
export type MessagesRetentionCounts = Static<typeof MessagesRetentionCounts>;

const MessagesExport = Type.Object(
  {
    chats: Type.Array(Type.Object({ id: Uuid, type: Type.String(), title: Type.Union([Type.String(), Type.Null()]), role: Type.String() }, strict)),
    messages: Type.Array(
      Type.Object(
        {
          id: Uuid,
          chatId: Uuid,
          seq: Seq,
          body: Type.String(),
          replyTo: Type.Union([Uuid, Type.Null()]),
          createdAt: Timestamp,
          editedAt: Type.Union([Timestamp, Type.Null()]),
          deletedAt: Type.Union([Timestamp, Type.Null()]),
        },
        strict,
      ),
    ),
    reactions: Type.Array(Type.Object({ messageId: Uuid, emoji: Type.String() }, strict)),
    pollVotes: Type.Array(Type.Object({ pollId: Uuid, optionId: Type.String() }, strict)),
    readPositions: Type.Array(Type.Object({ chatId: Uuid, seq: Seq }, strict)),
    /** Files the user uploaded (metadata; the bytes are fetched through GET /attachments/:id). */
    attachments: Type.Array(Type.Object({ ...AttachmentView.properties, uploadedAt: Timestamp }, strict)),
  },
  strict,
);

/**
 * How long the users service waits for `messages.export`: a long-time user's history is one large
 * query (api.md promises 30 s). The gateway waits longer for the export route
 * (EXPORT_GATEWAY_TIMEOUT_MS), whatever SERVICE_TIMEOUT_MS is, so this wait is the one that decides.
 */
export const EXPORT_TIMEOUT_MS = 30_000;
/** The gateway's wait for GET /api/v1/users/me/export: the users service's, plus a margin for its own queries and the answer's parts. */
export const EXPORT_GATEWAY_TIMEOUT_MS = EXPORT_TIMEOUT_MS + 5_000;

function method<Req extends TSchema, Res extends TSchema>(req: Req, res: Res): { req: Req; res: Res } {
  return { req, res };
}

export const RPC_SCHEMAS = {
  /** users: which of these ids are registered users. At most MAX_RPC_BATCH ids. */
  'users.existing': method(UserIds({ maxItems: MAX_RPC_BATCH }), UserIds({ maxItems: MAX_RPC_BATCH })),
  /**
   * users: which of these ids exist, and which of those refuse `actorId` for `purpose` (they blocked
   * the actor, or their `groupAdd` setting leaves the actor out). At most MAX_RPC_BATCH ids.
   */
  'users.admission': method(
    Type.Object({ actorId: Uuid, userIds: Type.Array(Uuid, { maxItems: MAX_RPC_BATCH }), purpose: Type.Union([Type.Literal('direct'), Type.Literal('group')]) }, strict),
    Type.Object({ existing: Type.Array(Uuid, { maxItems: MAX_RPC_BATCH }), refused: Type.Array(Uuid, { maxItems: MAX_RPC_BATCH }) }, strict),
  ),
  /** users: answers once the service takes requests (restore waits for it). */
  'users.ping': method(Empty, Pong),
  /** messages: answers once the service takes requests (restore waits for it). */
  'messages.ping': method(Empty, Pong),
  /**
   * users: who hears this user's presence (the `presence` setting): `userIds` beyond chat peers,
   * whether chat peers hear it at all, and the users it blocked (never told, chat peers or not).
   */
  'users.watchers': method(
    Type.Object({ userId: Uuid }, strict),
    Type.Object({ userIds: Type.Array(Uuid), chatPeers: Type.Boolean(), blocked: Type.Array(Uuid) }, strict),
  ),
  /**
   * users: for each viewer, of their contacts and the given chat peers, whose presence they may see
   * (those users' `presence` setting, their blocks): the presence snapshots of a gateway's batch of
   * new sockets. `userIds[i]` answers `viewers[i]`; the answer may stop short of the last viewers
   * (past SETUP_ANSWER_BYTES), and the gateway asks again for them.
   */
  'users.presenceVisibleMany': method(
    Type.Object(
      { viewers: Type.Array(Type.Object({ viewerId: Uuid, chatPeerIds: Type.Array(Uuid, { maxItems: MAX_CHAT_PEERS }) }, strict), { minItems: 1, maxItems: MAX_SETUP_BATCH }) },
      strict,
    ),
    Type.Object({ userIds: Type.Array(Type.Array(Uuid), { maxItems: MAX_SETUP_BATCH }) }, strict),
  ),
  /**
   * messages: what a gateway needs to set up sockets of these users: for each, the chats they are
   * in with the seq each answer reflects (`seqs[i]` for `chatIds[i]`), and everyone who shares a
   * chat with them (at most MAX_CHAT_PEERS), for the presence snapshot. `users[i]` answers
   * `userIds[i]`; the answer may stop short of the last users (past SETUP_ANSWER_BYTES), and the
   * gateway asks again for them.
   */
  'messages.socketSetups': method(
    Type.Object({ userIds: Type.Array(Uuid, { minItems: 1, maxItems: MAX_SETUP_BATCH }) }, strict),
    Type.Object(
      { users: Type.Array(Type.Object({ chatIds: Type.Array(Uuid), seqs: Type.Array(Seq), peerIds: Type.Array(Uuid) }, strict), { maxItems: MAX_SETUP_BATCH }) },
      strict,
    ),
  ),
  /** messages: the chats a user is a member of (the gateway's audience of a live profile change). */
  'messages.memberships': method(
    Type.Object({ userId: Uuid }, strict),
    /** `seqs[i]`: the seq of `chatIds[i]` the answer reflects. */
    Type.Object({ chatIds: Type.Array(Uuid), seqs: Type.Array(Seq) }, strict),
  ),
  /** messages: is this user a member of this chat (the gateway asks before publishing for a chat it did not know). */
  'messages.isMember': method(
    Type.Object({ chatId: Uuid, userId: Uuid }, strict),
    /** `seq`: the chat's seq the answer reflects (0 if none). */
    Type.Object({ member: Type.Boolean(), seq: Seq }, strict),
  ),
  /** messages: the chat a message belongs to, if the user may see it (reply targets must be in the same chat). */
  'messages.messageChat': method(
    Type.Object({ messageId: Uuid, userId: Uuid }, strict),
    Type.Object({ chatId: Type.Union([Uuid, Type.Null()]) }, strict),
  ),
  /** messages: record a file the gateway stored (metadata only; the bytes are in the store). */
  'messages.registerAttachment': method(
    // The gateway cuts file names to 255 characters (cleanFileName).
    Type.Object({ attachmentId: Uuid, uploaderId: Uuid, name: Type.String({ maxLength: 255 }), size: Type.Integer({ minimum: 0 }), mime: Type.String() }, strict),
    AttachmentView,
  ),
  /** messages: may this user download this attachment (uploader, or member of a chat it was sent to)? */
  'messages.attachmentAccess': method(Type.Object({ attachmentId: Uuid, userId: Uuid }, strict), Type.Union([AttachmentView, Type.Null()])),
  /** messages: can the sender attach these to a message (uploaded by them, or already visible to them)? */
  'messages.attachmentsUsable': method(
    Type.Object({ attachmentIds: AttachmentIds, userId: Uuid }, strict),
    Type.Object({ usable: Type.Boolean(), attachments: Type.Array(AttachmentView) }, strict),
  ),
  /**
   * messages: for each send, the message its sender already stored with that clientMsgId, if any
   * (idempotency beyond JetStream's dedup window). One call for all the sends a gateway checks in
   * one event-loop turn; `found[i]` answers `sends[i]`. At most MAX_SENT_LOOKUPS sends.
   */
  'messages.sentMessages': method(
    Type.Object(
      { sends: Type.Array(Type.Object({ chatId: Uuid, senderId: Uuid, clientMsgId: SendMessageFields.clientMsgId }, strict), { maxItems: MAX_SENT_LOOKUPS }) },
      strict,
    ),
    Type.Object({ found: Type.Array(Type.Union([Type.Object({ messageId: Uuid, seq: Seq }, strict), Type.Null()]), { maxItems: MAX_SENT_LOOKUPS }) }, strict),
  ),
  /**
   * messages: what the messages service holds about a user, for their data export. `proof` is the
   * user's export request as the gateway signed it, passed on by users: without it, nothing.
   */
  'messages.export': method(Type.Object({ userId: Uuid, proof: Type.Union([SignedRequest, Type.Null()]) }, strict), MessagesExport),
  /** messages: the WebSocket `read` frame (mark a chat read up to a message). */
  'messages.markRead': method(
    Type.Object({ chatId: Uuid, userId: Uuid, messageId: Uuid }, strict),
    Type.Union([Type.Object({ ok: Type.Literal(true), seq: Seq }, strict), Type.Object({ ok: Type.Literal(false), code: Type.String() }, strict)]),
  ),
  /**
   * messages: the rows a retention pass would delete (its dry run and its report); at most
   * MAX_RPC_BATCH chats per call. `heads` is each of those chats' last seq as the projection has
   * it: the basis of the pass's expiry event, since a chat's newest event may have been deleted
   * from the stream since (a reaction or edit that raced its message's deletion), and the stream's
   * head alone would give its seq again. Answered when the request asks (`heads: true`); a
   * messages service from before it refuses that request as invalid.
   *
   * `tombstones` asks for deleted messages (tombstones) created before `cutoff`, as each chat's
   * highest such seq, a page of at most MAX_RPC_BATCH chats after `afterChatId` (ascending): a
   * deletion removes the message's MessageSent from the stream, so the pass's scan never sees
   * them. Answered in `tombstones`; a messages service from before it refuses the request as invalid.
   */
  'messages.retentionPreview': method(
    Type.Object(
      {
        chats: Type.Array(Type.Object({ chatId: Uuid, upToSeq: Seq }, strict), { maxItems: MAX_RPC_BATCH }),
        receiptsCutoff: Type.Union([Timestamp, Type.Null()]),
        tombstones: Type.Optional(Type.Object({ cutoff: Timestamp, afterChatId: Type.Union([Uuid, Type.Null()]) }, strict)),
        /** Asks for `heads` (answered only when asked: a pass from before it refuses a reply with them). */
        heads: Type.Optional(Type.Boolean()),
      },
      strict,
    ),
    Type.Object(
      {
        ...MessagesRetentionCounts.properties,
        heads: Type.Optional(Type.Array(Type.Object({ chatId: Uuid, seq: Type.Integer({ minimum: 0 }) }, strict), { maxItems: MAX_RPC_BATCH })),
        tombstones: Type.Optional(Type.Array(Type.Object({ chatId: Uuid, seq: Seq }, strict), { maxItems: MAX_RPC_BATCH })),
      },
      strict,
    ),
  ),
  /**
   * messages: how much of what deletions started is still queued for its reactors (stream events
   * to delete, attachments to release, files to delete); the retention pass waits for 0.
   */
  'messages.retentionBacklog': method(Type.Object({}, strict), Type.Object({ pending: Count }, strict)),
  /** messages: the bytes of a user's uploads that no message carries yet (the gateway's upload quota). */
  'messages.pendingUploads': method(Type.Object({ userId: Uuid }, strict), Type.Object({ bytes: Count, files: Count }, strict)),
  /** messages: delete attachment files no row refers to (left by a crash between commit and file deletion). */
  'messages.sweepFiles': method(Type.Object({ olderThan: Timestamp }, strict), Type.Object({ deleted: Count }, strict)),
  /**
   * messages: of these attachments, the ones a message the pass does not expire still carries (one
   * sent again, or forwarded, after the message it first came with): a message stored in the chats
   * stream at or after `fromStreamSeq`, the pass's first fresh sequence (expiry goes by the time
   * NATS stored an event, not the sender's clock); at most MAX_RPC_BATCH ids. The retention pass
   * keeps their upload records (carried forward) instead of dropping them.
   */
  'messages.attachmentsKept': method(
    Type.Object({ attachmentIds: Type.Array(Uuid, { maxItems: MAX_RPC_BATCH }), fromStreamSeq: Type.Integer({ minimum: 0 }) }, strict),
    Type.Object({ kept: Type.Array(Uuid, { maxItems: MAX_RPC_BATCH }) }, strict),
  ),
  /** messages: delete again the ledger's messages that a restored backup brought back; at most MAX_RPC_BATCH ids. */
  'messages.redelete': method(Type.Object({ messageIds: Type.Array(Uuid, { maxItems: MAX_RPC_BATCH }) }, strict), Type.Object({ deleted: Count }, strict)),
  /** users: erase again a ledger's account that a restored backup brought back (no-op when it is gone). */
  'users.reerase': method(Type.Object({ userId: Uuid, purgeMessages: Type.Boolean() }, strict), Type.Object({ erased: Type.Boolean() }, strict)),
  /** users: the rows a retention pass would delete. */
  'users.retentionPreview': method(
    Type.Object({ auditCutoff: Timestamp, resetCutoff: Timestamp }, strict),
    Type.Object({ auditEntries: Count, resetTokens: Count }, strict),
  ),
};

export type RpcMethod = keyof typeof RPC_SCHEMAS;

/** Each method's request and reply types, derived from RPC_SCHEMAS. */
export type RpcMethods = {
  [M in RpcMethod]: { req: Static<(typeof RPC_SCHEMAS)[M]['req']>; res: Static<(typeof RPC_SCHEMAS)[M]['res']> };
};

const validators = new Map<string, Validator<TSchema>>();

/**
 * The compiled check of a method's request (`req`) or reply (`res`). Compiled on first use and
 * kept: a process serves or calls only some of the methods, and each check sits on a hot path.
 */
export function rpcValidator<M extends RpcMethod, P extends 'req' | 'res'>(method: M, part: P): Validator<(typeof RPC_SCHEMAS)[M][P]> {
  const key = `${method} ${part}`;
  let validator = validators.get(key);
  if (!validator) {
    validator = compile(RPC_SCHEMAS[method][part]);
    validators.set(key, validator);
  }
  return validator as Validator<(typeof RPC_SCHEMAS)[M][P]>;
}
