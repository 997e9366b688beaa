/**
 * manifest.json, the first entry of every archive: what the archive holds, where each part came
 * from, and the figures verify compares a restore against.
 */
/** 2: attachment files in the pool beside the archive (`files/`), not inside it. Format 1 archives still restore. */
export const MANIFEST_FORMAT = 2;
export const READABLE_FORMATS = [1, 2];

export interface PartInfo {
  /** Path inside the archive. */
  path: string;
  bytes: number;
  sha256: string;
}

export interface StreamPart extends PartInfo {
  /** Key in the stream declarations (packages/contracts streams.ts): users, chats, … */
  key: string;
  /** The stream's name in the backed-up namespace. */
  name: string;
  /** Stream state when the export began (after the database snapshot): the export stops at lastSeq. */
  firstSeq: number;
  lastSeq: number;
  /** Messages exported (sequences between firstSeq and lastSeq that were still stored). */
  messages: number;
  /** SHA-256 over every exported message's sequence, namespace-free subject and payload. */
  digest: string;
  /**
   * Durable consumers on the stream at backup time (the projectors, named after their projections),
   * with their settings: restore recreates them starting just after the projection's checkpoint.
   */
  consumers: ConsumerRecord[];
}

export interface ConsumerRecord {
  name: string;
  /** Without the namespace prefix. */
  filterSubject?: string;
  ackWaitNanos?: number;
  maxAckPending?: number;
  maxDeliver?: number;
}

export interface ChatHistory {
  messages: number;
  /** md5 of every messages.messages row of the chat (row text, in seq order), from the dump's snapshot. */
  digest: string;
}

export interface Manifest {
  format: number;
  namespace: string;
  createdAt: string;
  finishedAt: string;
  versions: { parley: string; node: string; postgres: string; pgDump: string; nats: string };
  database: PartInfo & {
    /** Row count of every table, `schema.table`, in the dump's snapshot. */
    tables: Record<string, number>;
    /** Per chat, from the same snapshot. */
    chats: Record<string, ChatHistory>;
    /** `schema.projector` → the stream sequence that projector had applied, in the dump's snapshot. */
    checkpoints: Record<string, number>;
  };
  streams: StreamPart[];
  /** Streams of the namespace that are not exported (e.g. the presence KV bucket: live state only). */
  skippedStreams: string[];
  /**
   * The attachment store's files. `pool` (format 2) names the folder beside the archive that holds
   * them by SHA-256 (attachments.ts); without it (format 1) they are inside the archive.
   */
  attachments: { files: PartInfo[]; bytes: number; pool?: string };
}

export const MANIFEST_PATH = 'manifest.json';
export const DATABASE_PART = 'database.dump';

/** Every part inside the archive, with its checksum (pooled attachments are checked as they are restored). */
export function partsOf(manifest: Manifest): PartInfo[] {
  return [manifest.database, ...manifest.streams, ...(manifest.attachments.pool ? [] : manifest.attachments.files)];
}
