/**
 * What travels between the gateway and the services for an HTTP API call (over NATS request/reply).
 * The gateway authenticates and parses; the owning service validates, authorizes and answers.
 */
export interface AuthContext {
  userId: string;
  sessionId: string;
}

export interface ApiRequest {
  method: string;
  /** Path without the query string, e.g. `/api/v1/chats/0193.../messages`. */
  path: string;
  query: Record<string, string>;
  /** Parsed JSON body, or null when the request had none. */
  body: unknown;
  auth: AuthContext | null;
  requestId: string;
  /** Client address as the gateway determined it (trusted-proxy rules applied). */
  ip: string;
  /** The User-Agent header, truncated; kept in the audit log. */
  userAgent: string;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
  /** The matched route template (`/api/v1/chats/:id`), so the gateway's metrics never label by raw path. */
  route: string;
  headers?: Record<string, string>;
  /**
   * Sessions this request revoked (logout, password change). The gateway that carries the answer
   * applies them before replying, so the very next request with such a token fails; other gateways
   * learn from the revocations stream within milliseconds.
   */
  revokedSessions?: string[];
}

/** A request as the gateway signed it (packages/bus/src/assertion.ts), kept whole to be passed on as proof. */
export interface SignedRequest {
  subject: string;
  /** The Parley-Assertion header. */
  assertion: string;
  /** The request's payload bytes, base64. */
  payload: string;
}

/** api.md's error envelope. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/** Internal request/reply methods between services (subjects.rpc). */
/** Most sends one `messages.sentMessages` call looks up. */
export const MAX_SENT_LOOKUPS = 500;

export interface RpcMethods {
  /** users: which of these ids are registered users. */
  'users.existing': { req: { userIds: string[] }; res: { userIds: string[] } };
  /** users: answers once the service takes requests (restore waits for it). */
  'users.ping': { req: Record<string, never>; res: { ok: true } };
  /** messages: answers once the service takes requests (restore waits for it). */
  'messages.ping': { req: Record<string, never>; res: { ok: true } };
  /** users: who has this user in their contacts (they see the user's presence). */
  'users.watchers': { req: { userId: string }; res: { userIds: string[] } };
  /** messages: the chats a user is a member of (the gateway loads it when a socket authenticates). */
  'messages.memberships': { req: { userId: string }; res: { chatIds: string[]; /** each chat's seq the answer reflects */ seqs: number[] } };
  /** messages: is this user a member of this chat (the gateway asks before publishing for a chat it did not know). */
  'messages.isMember': { req: { chatId: string; userId: string }; res: { member: boolean; /** the chat's seq the answer reflects (0 if none) */ seq: number } };
  /** messages: the chat a message belongs to, if the user may see it (reply targets must be in the same chat). */
  'messages.messageChat': { req: { messageId: string; userId: string }; res: { chatId: string | null } };
  /** messages: record a file the gateway stored (metadata only; the bytes are in the store). */
  'messages.registerAttachment': {
    req: { attachmentId: string; uploaderId: string; name: string; size: number; mime: string };
    res: { id: string; name: string; size: number; mime: string };
  };
  /** messages: may this user download this attachment (uploader, or member of a chat it was sent to)? */
  'messages.attachmentAccess': { req: { attachmentId: string; userId: string }; res: { name: string; size: number; mime: string } | null };
  /** messages: can the sender attach these to a message (uploaded by them, or already visible to them)? */
  'messages.attachmentsUsable': {
    req: { attachmentIds: string[]; userId: string };
    res: { usable: boolean; attachments: { id: string; name: string; size: number; mime: string }[] };
  };
  /**
   * messages: for each send, the message its sender already stored with that clientMsgId, if any
   * (idempotency beyond JetStream's dedup window). One call for all the sends a gateway checks in
   * one event-loop turn; `found[i]` answers `sends[i]`. At most MAX_SENT_LOOKUPS sends.
   */
  'messages.sentMessages': {
    req: { sends: { chatId: string; senderId: string; clientMsgId: string }[] };
    res: { found: ({ messageId: string; seq: number } | null)[] };
  };
  /**
   * messages: what the messages service holds about a user, for their data export. `proof` is the
   * user's export request as the gateway signed it, passed on by users: without it, nothing.
   */
  'messages.export': {
    req: { userId: string; proof: SignedRequest | null };
    res: {
      chats: { id: string; type: string; title: string | null; role: string }[];
      messages: { id: string; chatId: string; seq: number; body: string; replyTo: string | null; createdAt: string; editedAt: string | null; deletedAt: string | null }[];
      reactions: { messageId: string; emoji: string }[];
      pollVotes: { pollId: string; optionId: string }[];
      readPositions: { chatId: string; seq: number }[];
      /** Files the user uploaded (metadata; the bytes are fetched through GET /attachments/:id). */
      attachments: { id: string; name: string; size: number; mime: string; uploadedAt: string }[];
    };
  };
  /** messages: the WebSocket `read` frame (mark a chat read up to a message). */
  'messages.markRead': { req: { chatId: string; userId: string; messageId: string }; res: { ok: true; seq: number } | { ok: false; code: string } };
  /** messages: the rows a retention pass would delete (its dry run and its report); at most 1000 chats per call. */
  'messages.retentionPreview': { req: { chats: { chatId: string; upToSeq: number }[]; receiptsCutoff: string | null }; res: MessagesRetentionCounts };
  /** messages: delete attachment files no row refers to (left by a crash between commit and file deletion). */
  'messages.sweepFiles': { req: { olderThan: string }; res: { deleted: number } };
  /** messages: delete again the ledger's messages that a restored backup brought back; at most 1000 ids. */
  'messages.redelete': { req: { messageIds: string[] }; res: { deleted: number } };
  /** users: erase again a ledger's account that a restored backup brought back (no-op when it is gone). */
  'users.reerase': { req: { userId: string; purgeMessages: boolean }; res: { erased: boolean } };
  /** users: the rows a retention pass would delete. */
  'users.retentionPreview': { req: { auditCutoff: string; resetCutoff: string }; res: { auditEntries: number; resetTokens: number } };
}

export interface MessagesRetentionCounts {
  messages: number;
  reactions: number;
  polls: number;
  pollVotes: number;
  attachments: number;
  readReceipts: number;
}
export type RpcMethod = keyof RpcMethods;
