import { subjects } from './subjects.js';

/**
 * The declared JetStream streams. One stream per retention class (docs/retention.md#the-policy): what differs between
 * them is how long data lives and how it is compacted, so each gets its own limits.
 *
 * Chat events deliberately have no `max_age`: a chat's structure (members, title) must outlive its
 * messages, and its next `seq` follows from its latest event. The retention service expires them
 * instead: it folds each chat's structure into a `ChatSnapshot` (`<ns>.chatsnap.<chatId>`, in the
 * same stream) and then purges every chat event older than the cutoff with one request
 * (docs/retention.md#stream-compaction).
 */
export interface StreamDeclaration {
  name: string;
  description: string;
  subjects: string[];
  /** Age limit in seconds; 0 keeps messages until deleted. */
  maxAgeSeconds: number;
  /** -1 for no per-subject limit. */
  maxMsgsPerSubject: number;
  /** Window in which a repeated `Nats-Msg-Id` is answered as a duplicate instead of stored. */
  duplicateWindowSeconds: number;
  /**
   * Copies JetStream keeps, on as many servers of a cluster (STREAM_REPLICAS): 1 on a single server,
   * 3 to survive the loss of any one node. Changed in place when it differs.
   */
  replicas: number;
  /**
   * JetStream RePublish: every stored message on `src` is also sent on core NATS to `dest`, so live
   * delivery gets only what the stream accepted, and only the gateways subscribed to a chat get it.
   * Fixed when the stream is created (NATS 2.9 cannot change it later).
   */
  republish?: { src: string; dest: string };
}

export type StreamKey = 'users' | 'chats' | 'receipts' | 'audit' | 'resets' | 'revocations' | 'erasures';

/** Retention settings that shape stream limits; every service reads the same environment. */
export interface StreamRetention {
  auditLogDays: number;
  resetTokenDays: number;
  readReceiptDays: number;
}

export const DEFAULT_RETENTION: StreamRetention = { auditLogDays: 90, resetTokenDays: 7, readReceiptDays: 180 };

/**
 * Revocations must outlive every access token they revoke; access tokens live at most a day
 * (ACCESS_TOKEN_TTL is capped at 86400), so two days leaves margin for clock skew.
 */
const REVOCATION_MAX_AGE_SECONDS = 2 * 86400;
const DAY = 86400;

/**
 * The durable consumers that apply a retention pass's deletion events, by stream: named here so
 * the services that own them and the retention service that waits for them share one spelling.
 */
export const RETENTION_PROJECTORS = {
  chats: 'chats-projection',
  audit: 'audit-projection',
  resets: 'resets-projection',
  receipts: 'receipts-projection',
} as const satisfies Partial<Record<StreamKey, string>>;

/**
 * The attachments projection's durable consumer on the chats stream: the retention pass waits for
 * it when it waits for the file deletions that expired messages started.
 */
export const ATTACHMENTS_PROJECTOR = 'attachments-projection';

export function streamName(ns: string, key: StreamKey): string {
  return `${ns}_${key}`;
}

/**
 * Whether a JetStream stream belongs to namespace `ns`: `<ns>_<name>` or, for a KV bucket,
 * `KV_<ns>_<name>`, where no name of Parley's has an underscore. A prefix alone is not enough:
 * namespaces may hold underscores and share a server, and a restore into `parley` matched (and
 * with --force deleted) the streams of `parley_staging` (found in review).
 */
export function inNamespace(name: string, ns: string): boolean {
  const rest = name.startsWith(`KV_${ns}_`) ? name.slice(`KV_${ns}_`.length) : name.startsWith(`${ns}_`) ? name.slice(`${ns}_`.length) : null;
  return rest !== null && /^[a-z0-9-]+$/.test(rest);
}

export function declaredStreams(ns: string, retention: StreamRetention = DEFAULT_RETENTION, replicas = 1): Record<StreamKey, StreamDeclaration> {
  const declared: Record<StreamKey, Omit<StreamDeclaration, 'replicas'>> = {
    users: {
      name: streamName(ns, 'users'),
      description: 'Accounts and profiles; kept until erasure',
      subjects: [subjects.allUsers(ns), subjects.allIdentityClaims(ns)],
      maxAgeSeconds: 0,
      maxMsgsPerSubject: -1,
      duplicateWindowSeconds: 120,
    },
    chats: {
      name: streamName(ns, 'chats'),
      description: 'Every chat event (membership, messages) on one subject per chat',
      subjects: [subjects.allChats(ns), subjects.allChatClaims(ns), subjects.allAttachments(ns), subjects.allChatSnapshots(ns)],
      maxAgeSeconds: 0,
      maxMsgsPerSubject: -1,
      duplicateWindowSeconds: 120,
      republish: { src: subjects.allChats(ns), dest: `${ns}.live.chat.{{wildcard(1)}}` },
    },
    receipts: {
      name: streamName(ns, 'receipts'),
      description: 'Read positions, the latest per member and chat (READ_RECEIPT_RETENTION_DAYS)',
      subjects: [subjects.allReceipts(ns)],
      maxAgeSeconds: retention.readReceiptDays * DAY,
      maxMsgsPerSubject: 1,
      duplicateWindowSeconds: 120,
      republish: { src: subjects.allReceipts(ns), dest: `${ns}.live.receipt.{{wildcard(1)}}.{{wildcard(2)}}` },
    },
    audit: {
      name: streamName(ns, 'audit'),
      description: 'Security audit log (AUDIT_LOG_RETENTION_DAYS)',
      subjects: [subjects.allAudit(ns)],
      maxAgeSeconds: retention.auditLogDays * DAY,
      maxMsgsPerSubject: -1,
      duplicateWindowSeconds: 120,
    },
    resets: {
      name: streamName(ns, 'resets'),
      description: 'Password-reset token hashes (RESET_TOKEN_RETENTION_DAYS)',
      subjects: [subjects.allResets(ns)],
      maxAgeSeconds: retention.resetTokenDays * DAY,
      maxMsgsPerSubject: -1,
      duplicateWindowSeconds: 120,
    },
    erasures: {
      name: streamName(ns, 'erasures'),
      description: 'The erasure ledger: ids of accounts and messages erased on request, kept to scrub restored backups',
      subjects: [subjects.allErasures(ns)],
      maxAgeSeconds: 0,
      maxMsgsPerSubject: 1,
      duplicateWindowSeconds: 120,
    },
    revocations: {
      name: streamName(ns, 'revocations'),
      description: 'Revoked sessions, kept as long as an access token can live',
      subjects: [subjects.allRevocations(ns)],
      maxAgeSeconds: REVOCATION_MAX_AGE_SECONDS,
      maxMsgsPerSubject: 1,
      duplicateWindowSeconds: 120,
    },
  };
  return Object.fromEntries(Object.entries(declared).map(([key, decl]) => [key, { ...decl, replicas }])) as Record<StreamKey, StreamDeclaration>;
}

/**
 * The NATS KV buckets, each with the service that creates and scales it (its `owner`). Owners are
 * not the internet-facing gateway, which writes the presence and last seen keys: updating a
 * stream's settings (STREAM.UPDATE) lets whoever may do it add `sources`, which copies any other
 * stream of the account into one they can read (docs/security.md). The gateway and the retention
 * job may only create their bucket when it is missing; a create cannot change an existing one.
 */
export interface BucketDeclaration {
  bucket: string;
  /** Keys older than this are dropped; undefined keeps them. */
  ttlMs?: number;
  history: number;
  replicas: number;
  owner: 'users' | 'messages';
}

/** A presence key lives this long unless written again (gateways refresh theirs well inside it). */
export const PRESENCE_KEY_TTL_MS = 60 * 60_000;
/**
 * The job lock bucket's age limit: a key older than this is dropped whatever it says. Every renewal
 * writes the key again (packages/bus/src/job-lock.ts), so only a holder of the old format (no
 * lease, from before renewals) meets it.
 */
export const JOB_LOCK_TTL_MS = 6 * 3600_000;

export type BucketKey = 'presence' | 'lastSeen' | 'jobLock';

export function declaredBuckets(ns: string, replicas = 1): Record<BucketKey, BucketDeclaration> {
  return {
    presence: { bucket: subjects.presenceBucket(ns), ttlMs: PRESENCE_KEY_TTL_MS, history: 1, replicas, owner: 'users' },
    lastSeen: { bucket: subjects.lastSeenBucket(ns), history: 1, replicas, owner: 'users' },
    jobLock: { bucket: `${ns}_retention`, ttlMs: JOB_LOCK_TTL_MS, history: 1, replicas, owner: 'messages' },
  };
}
