import { subjects, type ServiceName } from './subjects.js';
import { streamName, type StreamKey } from './streams.js';
import { verifyNamespace } from './namespace.js';
import type { RpcMethod } from './rpc.js';

/**
 * Who may do what on the bus (docs/security.md, "The trust model"). Every process connects to NATS
 * as its own user (an nkey), and the server enforces these lists: a process can publish and
 * subscribe only where its work needs it. They are the single source for the server configuration
 * (`packages/bus/src/server-config.ts`, `npm run secrets`) and for the tests that prove each
 * refusal (`e2e/security/bus.test.ts`).
 */
export const PRINCIPALS = ['gateway', 'users', 'messages', 'retention', 'backup'] as const;
export type Principal = (typeof PRINCIPALS)[number];

export interface BusPermissions {
  publish: string[];
  subscribe: string[];
  /** May answer requests it received (publish to their reply subjects only). */
  allowResponses: boolean;
}

/**
 * Each stream's owner creates it and keeps its settings (ensureStreams); the others only use it.
 * One owner per stream, so a process that reads a stream can never change its limits.
 */
export const STREAM_OWNERS: Record<StreamKey, Principal> = {
  users: 'users',
  audit: 'users',
  resets: 'users',
  revocations: 'users',
  erasures: 'users',
  chats: 'messages',
  receipts: 'messages',
};

/**
 * The streams each principal reads besides its own: it may read (not change) them, and waits at
 * start until their owner has created them.
 */
export const STREAMS_READ: Record<Principal, StreamKey[]> = {
  gateway: ['chats', 'revocations'], // heads for sequencing, gap fills and resume; revoked sessions
  users: [],
  messages: ['users', 'erasures'], // account erasures become chat events
  retention: ['chats', 'audit', 'resets', 'receipts', 'erasures'],
  backup: ['users', 'audit', 'resets', 'revocations', 'erasures', 'chats', 'receipts'],
};

/**
 * The other principals' streams a service needs before it can start (its consumers read them);
 * it waits for their owner to create them. users needs none, so users → messages → gateway is a
 * start order that never waits.
 */
export const STREAMS_AWAITED: Partial<Record<Principal, StreamKey[]>> = {
  // Not chats: the gateway reads it only per send and resume, which answer "unavailable" until
  // messages has created it; its start reads the revocations.
  gateway: ['revocations'],
  messages: ['users', 'erasures'],
};

/**
 * Who may call each internal method. The server refuses anyone else's request before it reaches
 * the service; methods that act for a user also need the gateway's signature (RPC_SIGNED).
 */
export const RPC_CALLERS: Record<RpcMethod, Principal[]> = {
  'users.existing': ['messages'],
  'users.admission': ['messages'],
  'users.ping': ['backup'],
  'messages.ping': ['backup'],
  'users.watchers': ['gateway'],
  'users.presenceVisibleMany': ['gateway'],
  'messages.socketSetups': ['gateway'],
  'users.reerase': ['retention'],
  'users.retentionPreview': ['retention'],
  'messages.memberships': ['gateway'],
  'messages.isMember': ['gateway'],
  'messages.messageChat': ['gateway'],
  'messages.registerAttachment': ['gateway'],
  'messages.attachmentAccess': ['gateway'],
  'messages.attachmentsUsable': ['gateway'],
  'messages.sentMessages': ['gateway'],
  'messages.markRead': ['gateway'],
  'messages.pendingUploads': ['gateway'],
  'messages.export': ['users'],
  'messages.retentionPreview': ['retention'],
  'messages.sweepFiles': ['retention'],
  'messages.attachmentsKept': ['retention'],
  'messages.retentionBacklog': ['retention'],
  'messages.redelete': ['retention'],
};

/**
 * Methods the gateway calls for one user: the request must carry the gateway's signed assertion
 * (packages/bus/src/assertion.ts). A body naming a user proves nothing by itself. (`messages.export`
 * acts for a user too, but users calls it: its proof is the user's signed API request, passed on in
 * the body and checked by the handler.)
 */
export const RPC_SIGNED: ReadonlySet<RpcMethod> = new Set<RpcMethod>([
  'users.watchers',
  'users.presenceVisibleMany',
  'messages.socketSetups',
  'messages.memberships',
  'messages.isMember',
  'messages.messageChat',
  'messages.registerAttachment',
  'messages.attachmentAccess',
  'messages.attachmentsUsable',
  'messages.pendingUploads',
  'messages.sentMessages',
  'messages.markRead',
]);

/**
 * Reply subjects of a principal's requests start with this prefix (nats.js `inboxPrefix`), so a
 * process can subscribe to its own replies and to nobody else's.
 */
export function inboxPrefix(ns: string, principal: Principal): string {
  return `_INBOX_${ns}_${principal}`;
}

/** JetStream API subjects for what a principal does with one stream (docs.nats.io, JetStream wire API). */
const js = {
  /** Read the stream: info, direct and stored gets, consumers (durable, ephemeral and ordered), acks. */
  read: (s: string) => [
    `$JS.API.STREAM.INFO.${s}`,
    `$JS.API.DIRECT.GET.${s}`,
    `$JS.API.DIRECT.GET.${s}.>`,
    `$JS.API.STREAM.MSG.GET.${s}`,
    `$JS.API.CONSUMER.CREATE.${s}`,
    `$JS.API.CONSUMER.CREATE.${s}.>`,
    `$JS.API.CONSUMER.DURABLE.CREATE.${s}.*`,
    `$JS.API.CONSUMER.INFO.${s}.*`,
    `$JS.API.CONSUMER.DELETE.${s}.*`,
    `$JS.API.CONSUMER.MSG.NEXT.${s}.*`,
    `$JS.API.CONSUMER.NAMES.${s}`,
    `$JS.API.CONSUMER.LIST.${s}`,
    `$JS.ACK.${s}.>`,
    `$JS.FC.${s}.>`,
  ],
  /** Create the stream and bring its settings in line (the owner only). */
  manage: (s: string) => [`$JS.API.STREAM.CREATE.${s}`, `$JS.API.STREAM.UPDATE.${s}`, `$JS.API.STREAM.INFO.${s}`],
  /**
   * Create the stream when it is missing, and nothing more: a create cannot change an existing
   * stream, while an update can add `sources` that copy any other stream into it (docs/security.md).
   */
  create: (s: string) => [`$JS.API.STREAM.CREATE.${s}`],
  /** Remove single messages and subjects (retention, erasure, edits). */
  compact: (s: string) => [`$JS.API.STREAM.MSG.DELETE.${s}`, `$JS.API.STREAM.PURGE.${s}`],
  /** Delete the whole stream (restore and verify only). */
  drop: (s: string) => [`$JS.API.STREAM.DELETE.${s}`],
};

/** Every subject and stream of namespace `ns`: the backup job's reach. */
function everythingOf(ns: string): string[] {
  const streams = [...(Object.keys(STREAM_OWNERS) as StreamKey[]).map((k) => streamName(ns, k)), `KV_${subjects.presenceBucket(ns)}`, `KV_${subjects.lastSeenBucket(ns)}`, `KV_${ns}_retention`];
  return [`${ns}.>`, ...streams.flatMap((x) => [...js.read(x), ...js.manage(x), ...js.compact(x), ...js.drop(x)])];
}

/**
 * The permissions of every principal in namespace `ns`. `ledgersOf`: other namespaces whose
 * erasure ledger and revocations a restore into `ns` may import (the system a backup was taken from).
 */
export function busPermissions(ns: string, options: { ledgersOf?: string[] } = {}): Record<Principal, BusPermissions> {
  const s = (key: StreamKey) => streamName(ns, key);
  const owned = (p: Principal) => (Object.keys(STREAM_OWNERS) as StreamKey[]).filter((k) => STREAM_OWNERS[k] === p);
  const rpcs = (p: Principal) =>
    (Object.keys(RPC_CALLERS) as RpcMethod[])
      .filter((m) => RPC_CALLERS[m].includes(p))
      .map((m) => {
        const [service, name] = m.split('.') as [ServiceName, string];
        return subjects.rpc(ns, service, name);
      });
  const presenceKv = `KV_${subjects.presenceBucket(ns)}`;
  const lastSeenKv = `KV_${subjects.lastSeenBucket(ns)}`;
  const retentionKv = `KV_${ns}_retention`;
  const common = (p: Principal) => ({ publish: ['$JS.API.INFO', ...rpcs(p)], subscribe: [`${inboxPrefix(ns, p)}.>`] });
  // Whoever requests a service's answers may fetch the parts of a large one (bus answer-parts.ts),
  // and a service that answers serves them.
  const services: ServiceName[] = ['users', 'messages'];
  const partsAskedOf = (publish: string[]) =>
    services.filter((svc) => publish.some((x) => x === subjects.api(ns, svc) || x.startsWith(`${ns}.rpc.${svc}.`))).map((svc) => subjects.allParts(ns, svc));
  const partsServedBy = (p: Principal) => (services as string[]).includes(p) ? [subjects.allParts(ns, p as ServiceName)] : [];
  const merge = (p: Principal, extra: { publish: string[]; subscribe: string[]; allowResponses?: boolean }): BusPermissions => {
    const publish = [...common(p).publish, ...owned(p).flatMap((k) => js.manage(s(k))), ...[...owned(p), ...STREAMS_READ[p]].flatMap((k) => js.read(s(k))), ...extra.publish];
    return {
      publish: [...new Set([...publish, ...partsAskedOf(publish)])],
      subscribe: [...new Set([...common(p).subscribe, ...extra.subscribe, ...(extra.allowResponses ? partsServedBy(p) : [])])],
      allowResponses: extra.allowResponses ?? false,
    };
  };

  return {
    gateway: merge('gateway', {
      publish: [
        subjects.allChats(ns), // MessageSent of WebSocket sends
        subjects.allTyping(ns),
        subjects.allPresence(ns),
        subjects.allProfiles(ns),
        subjects.api(ns, 'users'),
        subjects.api(ns, 'messages'),
        ...js.create(presenceKv),
        ...js.read(presenceKv),
        // A user's key on this gateway is removed by purging its subject (no marker left).
        ...js.compact(presenceKv),
        `$KV.${subjects.presenceBucket(ns)}.>`,
        // Last seen: written when a user goes offline, removed (no marker left) when the user may
        // not be seen.
        ...js.create(lastSeenKv),
        ...js.read(lastSeenKv),
        ...js.compact(lastSeenKv),
        `$KV.${subjects.lastSeenBucket(ns)}.>`,
      ],
      subscribe: [
        `${ns}.live.chat.*`,
        `${ns}.live.receipt.*.*`,
        subjects.allInboxes(ns),
        subjects.allTyping(ns),
        subjects.allPresence(ns),
        subjects.allProfiles(ns),
      ],
    }),
    users: merge('users', {
      publish: [
        subjects.allUsers(ns),
        subjects.allIdentityClaims(ns),
        subjects.allAudit(ns),
        subjects.allResets(ns),
        subjects.allRevocations(ns),
        `${ns}.erasure.user.*`,
        // Erasure removes the person's subjects from every stream that holds them.
        ...js.compact(s('users')),
        ...js.compact(s('audit')),
        ...js.compact(s('resets')),
        ...js.read(presenceKv),
        ...js.compact(presenceKv),
        ...js.read(lastSeenKv),
        ...js.compact(lastSeenKv),
        // The owner of both buckets: creates them and scales them (declaredBuckets).
        ...js.manage(presenceKv),
        ...js.manage(lastSeenKv),
      ],
      subscribe: [subjects.api(ns, 'users'), `${ns}.rpc.users.*`],
      allowResponses: true,
    }),
    messages: merge('messages', {
      publish: [
        subjects.allChats(ns),
        subjects.allChatClaims(ns),
        subjects.allAttachments(ns),
        subjects.allReceipts(ns),
        `${ns}.erasure.message.*`,
        subjects.allInboxes(ns),
        ...js.compact(s('chats')),
        ...js.compact(s('receipts')),
        // The owner of the job lock bucket: creates it and scales it (declaredBuckets).
        ...js.manage(retentionKv),
      ],
      subscribe: [subjects.api(ns, 'messages'), `${ns}.rpc.messages.*`],
      allowResponses: true,
    }),
    retention: merge('retention', {
      publish: [
        subjects.allChats(ns), // MessagesExpired
        subjects.allChatSnapshots(ns), // ChatSnapshot before a purge
        subjects.allChatClaims(ns), // direct-chat claims carried past a purge
        subjects.allAttachments(ns), // upload records still in use, carried past a purge
        subjects.auditRetention(ns),
        subjects.resetRetention(ns),
        subjects.receiptRetention(ns),
        ...(['chats', 'audit', 'resets', 'receipts'] as const).flatMap((k) => js.compact(s(k))),
        ...js.create(retentionKv),
        ...js.read(retentionKv),
        ...js.compact(retentionKv),
        `$KV.${ns}_retention.>`,
      ],
      subscribe: [],
    }),
    backup: merge('backup', {
      // Backup reads everything of the namespace; restore rebuilds it from an archive, and verify
      // does the same in its scratch namespace.
      publish: [
        '$JS.API.STREAM.NAMES',
        '$JS.API.STREAM.LIST',
        ...[ns, verifyNamespace(ns)].flatMap(everythingOf),
        // The source's revocations too: its sessions revoked after the backup stay revoked here.
        ...(options.ledgersOf ?? []).flatMap((other) => [...js.read(streamName(other, 'erasures')), ...js.read(streamName(other, 'revocations'))]),
        // The retention lock, held while the database snapshot is taken and the streams are read.
        `$KV.${ns}_retention.>`,
      ],
      subscribe: [],
    }),
  };
}
