import { createHash } from 'node:crypto';
import { identityKey } from './identity.js';

/**
 * Every NATS subject Parley uses is built here and only here, so that a grep for one function finds
 * every publisher and subscriber of a family. All start with the namespace.
 *
 *   <ns>.chat.<chatId>                  every event of one chat (one subject, so one gap-free seq)
 *   <ns>.chatclaim.<pairHash>           direct-chat uniqueness claims
 *   <ns>.chatsnap.<chatId>              a chat's structure as of its purged part (latest only)
 *   <ns>.attachment.<attachmentId>      uploaded files' metadata
 *   <ns>.user.<userId>                  every event of one user
 *   <ns>.userclaim.<kind>.<valueHash>   username / e-mail uniqueness claims
 *   <ns>.receipt.<chatId>.<userId>      a member's read position (latest only)
 *   <ns>.audit.<userId|anonymous>       security audit entries
 *   <ns>.revocation.<sessionId>         revoked sessions
 *   <ns>.reset.<userId>                 password-reset tokens (hashes) and their use
 *   <ns>.audit.retention, <ns>.reset.retention, <ns>.receipt.retention.all
 *                                       the retention service's deletion events for those streams
 *   <ns>.receipt.erased.<userId>        an erased account's read positions (ids only)
 *   <ns>.erasure.user.<userId>          the erasure ledger (ids only)
 *   <ns>.erasure.message.<messageId>
 *   <ns>.live.chat.<chatId>             stored chat events, republished by JetStream (core NATS)
 *   <ns>.live.receipt.<chatId>.<userId> stored read receipts, republished (core NATS)
 *   <ns>.inbox.<userId>                 "you were added to a chat" notices (core NATS)
 *   <ns>.api.<service>                  HTTP API requests routed by the gateway (request/reply)
 *   <ns>.rpc.<service>.<method>         internal service-to-service requests (request/reply)
 *   <ns>.parts.<service>.<answerId>     the rest of an answer too large for one reply (request/reply)
 */

/** Hash for values that must not appear in a subject verbatim (e-mails, names with dots, PII). */
function subjectHash(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

export const subjects = {
  chat: (ns: string, chatId: string) => `${ns}.chat.${chatId}`,
  allChats: (ns: string) => `${ns}.chat.*`,
  directChatClaim: (ns: string, userA: string, userB: string) =>
    `${ns}.chatclaim.${subjectHash([userA, userB].sort().join(':'))}`,
  allChatClaims: (ns: string) => `${ns}.chatclaim.*`,
  /** The retention service's snapshot of a chat's structure (ChatSnapshot), one per chat. */
  chatSnapshot: (ns: string, chatId: string) => `${ns}.chatsnap.${chatId}`,
  allChatSnapshots: (ns: string) => `${ns}.chatsnap.*`,
  attachment: (ns: string, attachmentId: string) => `${ns}.attachment.${attachmentId}`,
  allAttachments: (ns: string) => `${ns}.attachment.*`,

  user: (ns: string, userId: string) => `${ns}.user.${userId}`,
  allUsers: (ns: string) => `${ns}.user.*`,
  identityClaim: (ns: string, kind: 'username' | 'email', value: string) =>
    `${ns}.userclaim.${kind}.${subjectHash(identityKey(value))}`,
  allIdentityClaims: (ns: string) => `${ns}.userclaim.*.*`,

  receipt: (ns: string, chatId: string, userId: string) => `${ns}.receipt.${chatId}.${userId}`,
  allReceipts: (ns: string) => `${ns}.receipt.*.*`,
  audit: (ns: string, userId: string | null) => `${ns}.audit.${userId ?? 'anonymous'}`,
  allAudit: (ns: string) => `${ns}.audit.*`,
  revocation: (ns: string, sessionId: string) => `${ns}.revocation.${sessionId}`,
  allRevocations: (ns: string) => `${ns}.revocation.*`,
  reset: (ns: string, userId: string) => `${ns}.reset.${userId}`,
  /** Where the retention service publishes a stream's deletion event (not a user id: no clash). */
  auditRetention: (ns: string) => `${ns}.audit.retention`,
  resetRetention: (ns: string) => `${ns}.reset.retention`,
  receiptRetention: (ns: string) => `${ns}.receipt.retention.all`,
  /**
   * A person's read positions erased. Under userReceipts, so the erasure reactor purges first and
   * then publishes it, without a dedup id (a retry's purge takes the earlier one; it publishes anew).
   */
  receiptErasure: (ns: string, userId: string) => `${ns}.receipt.erased.${userId}`,
  userReceipts: (ns: string, userId: string) => `${ns}.receipt.*.${userId}`,
  erasedUser: (ns: string, userId: string) => `${ns}.erasure.user.${userId}`,
  erasedMessage: (ns: string, messageId: string) => `${ns}.erasure.message.${messageId}`,
  allErasures: (ns: string) => `${ns}.erasure.>`,
  allResets: (ns: string) => `${ns}.reset.*`,

  /** Core-NATS copy of a chat's stored events (stream RePublish), for the gateways holding its members. */
  liveChat: (ns: string, chatId: string) => `${ns}.live.chat.${chatId}`,
  /** Core-NATS copy of a chat's stored read receipts. */
  liveReceipts: (ns: string, chatId: string) => `${ns}.live.receipt.${chatId}.*`,
  /** Typing notices (core NATS, never stored). */
  typing: (ns: string, chatId: string) => `${ns}.typing.${chatId}`,
  allTyping: (ns: string) => `${ns}.typing.*`,
  /** Presence transitions (core NATS), and the KV bucket of who is connected where. */
  presence: (ns: string, userId: string) => `${ns}.presence.${userId}`,
  allPresence: (ns: string) => `${ns}.presence.*`,
  presenceBucket: (ns: string) => `${ns}_presence`,
  /** When each user last went offline (KV, one key per user id, no TTL): "last seen". */
  lastSeenBucket: (ns: string) => `${ns}_lastseen`,
  /** A user's public profile changed (core NATS, from the gateway that carried the change; never stored). */
  profile: (ns: string, userId: string) => `${ns}.profile.${userId}`,
  allProfiles: (ns: string) => `${ns}.profile.*`,
  /** Notices to users who were just added to a chat (so their gateways start following it). */
  inbox: (ns: string, userId: string) => `${ns}.inbox.${userId}`,
  allInboxes: (ns: string) => `${ns}.inbox.*`,

  api: (ns: string, service: ServiceName) => `${ns}.api.${service}`,
  rpc: (ns: string, service: ServiceName, method: string) => `${ns}.rpc.${service}.${method}`,
  /** Prefix under which a service's process serves the parts of its large answers (bus answer-parts.ts). */
  parts: (ns: string, service: ServiceName) => `${ns}.parts.${service}`,
  allParts: (ns: string, service: ServiceName) => `${ns}.parts.${service}.*`,
} as const;

export type ServiceName = 'users' | 'messages';

/** The chat id in a `<ns>.chat.<chatId>` subject. */
export function chatIdOfSubject(subject: string): string {
  const id = subject.slice(subject.lastIndexOf('.') + 1);
  return id;
}
