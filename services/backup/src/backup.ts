import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { acquireJobLock, connectBus, JobLockHeldError, type Bus } from '@parley/bus';
import { declaredStreams, inNamespace } from '@parley/contracts';
import type { Logger } from '@parley/log';
import { archiveName, packArchive } from './archive.js';
import { POOL_DIR, poolAttachments, poolReferences } from './attachments.js';
import { dumpDatabase } from './database.js';
import { backupIdentity, type BackupConfig } from './env.js';
import { sha256File } from './files.js';
import { DATABASE_PART, MANIFEST_FORMAT, MANIFEST_PATH, type ConsumerRecord, type Manifest, type StreamPart } from './manifest.js';
import { parleyVersion } from './paths.js';
import { exportStream } from './streams.js';

export interface BackupResult {
  archive: string;
  bytes: number;
  durationMs: number;
  manifest: Manifest;
  /** Attachment files this backup had to copy into the pool (the rest were there from earlier ones). */
  pooled: { added: number; addedBytes: number };
}

/** The retention settings that shape the stream declarations (same as every service's). */
export function retentionOf(config: BackupConfig) {
  return { auditLogDays: config.AUDIT_LOG_RETENTION_DAYS, resetTokenDays: config.RESET_TOKEN_RETENTION_DAYS, readReceiptDays: config.READ_RECEIPT_RETENTION_DAYS };
}

/**
 * One live backup of the namespace into `dir`, while the system keeps taking writes:
 *
 * 1. Postgres: a REPEATABLE READ transaction exports a snapshot; `pg_dump -Fc --snapshot` dumps
 *    exactly it, and the manifest's row counts, history digests and checkpoints are read in it.
 * 2. Streams: their state (last sequence) is read AFTER that snapshot exists, and each stream is
 *    exported up to it (in parallel with pg_dump). Steps 1-2 hold the retention lock
 *    (acquireJobLock): a pass's purge must not remove what the export has not read yet. So
 *    every checkpoint in the dump is at or below its stream's end: after a restore the projectors replay the events between the two, and every
 *    event stored (acknowledged) before the backup began is in the archive.
 * 3. Attachment files, after the streams, so each file an exported event names is on disk.
 * 4. manifest.json, then one tar.gz, written under a temporary name and renamed.
 */
export async function runBackup(config: BackupConfig, dir: string, log: Logger): Promise<BackupResult> {
  const started = new Date();
  const ns = config.PARLEY_NAMESPACE;
  await mkdir(dir, { recursive: true });
  await removeStaleStaging(dir, log);
  // Staged next to the archive: same filesystem, so nothing large crosses devices twice.
  const staging = await mkdtemp(path.join(dir, '.parley-backup-'));
  const bus = await connectBus({ url: config.NATS_URL, name: 'backup', log, identity: backupIdentity(config) });
  let release: (() => Promise<void>) | null = null;
  try {
    // No retention pass while the database snapshot is taken and the streams are read: its purge
    // would remove events this export has not reached, and the snapshots it writes come after the
    // export's end (a chat restored without its structure). A running pass is waited for.
    release = await acquireJobLock(bus.nc, ns, 'backup', { replicas: config.STREAM_REPLICAS }).catch((error: unknown) => {
      if (error instanceof JobLockHeldError) throw error;
      // A NATS authorization made before this version lets the backup read the lock, not take it:
      // back up as before, and say what to change (docs/backup.md).
      log.warn({ err: error }, 'could not take the retention lock (a NATS authorization made before this version: add $KV.<namespace>_retention.> to the backup user\'s publish permissions and reload NATS, docs/backup.md): backing up without it, so a retention pass may run beside this backup');
      return null;
    });
    await mkdir(path.join(staging, 'streams'));
    const declarations = Object.entries(declaredStreams(ns, retentionOf(config), config.STREAM_REPLICAS));
    const streams: StreamPart[] = [];
    const databaseFile = path.join(staging, DATABASE_PART);
    let exporting: Promise<void> = Promise.resolve();
    log.debug('database snapshot');
    const figures = await dumpDatabase(config.DATABASE_URL, databaseFile, async () => {
      const states = await Promise.all(declarations.map(async ([key, decl]) => ({ ...(await streamState(bus, key, decl.name)), oneMessagePerSubject: decl.maxMsgsPerSubject === 1 })));
      exporting = exportStreams(bus, ns, staging, states, streams, log);
      // Surfaced by the await below; not an unhandled rejection while pg_dump still runs.
      exporting.catch(() => {});
    });
    log.debug('database dumped');
    await exporting;
    await release?.();
    log.debug('streams exported');
    const pooled = await poolAttachments(config.ATTACHMENTS_DIR, path.join(dir, POOL_DIR));
    const attachments = { files: pooled.files, bytes: pooled.bytes, pool: POOL_DIR };
    const declaredNames = new Set(declarations.map(([, d]) => d.name));
    const skippedStreams: string[] = [];
    for await (const name of bus.jsm.streams.names()) {
      if (inNamespace(name, ns) && !declaredNames.has(name)) skippedStreams.push(name);
    }
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      namespace: ns,
      createdAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      versions: { parley: parleyVersion(), node: process.version, postgres: figures.postgres, pgDump: figures.pgDump, nats: bus.nc.info?.version ?? 'unknown' },
      database: {
        path: DATABASE_PART,
        bytes: (await stat(databaseFile)).size,
        sha256: await sha256File(databaseFile),
        tables: figures.tables,
        chats: figures.chats,
        checkpoints: figures.checkpoints,
      },
      streams: streams.sort((a, b) => a.name.localeCompare(b.name)),
      skippedStreams: skippedStreams.sort(),
      attachments,
    };
    await writeFile(path.join(staging, MANIFEST_PATH), `${JSON.stringify(manifest, null, 1)}\n`);
    const archive = path.join(dir, archiveName(ns, started));
    // The sidecar first: an archive is complete (its .sha256 written) only with its pool references.
    await writeFile(`${archive}.files`, poolReferences(attachments.files));
    const { bytes } = await packArchive(staging, [DATABASE_PART, 'streams'], archive).catch(async (error: unknown) => {
      await rm(`${archive}.files`, { force: true });
      throw error;
    });
    const durationMs = Date.now() - started.getTime();
    log.info({ archive, bytes, durationMs, attachments: { files: pooled.files.length, added: pooled.added, addedBytes: pooled.addedBytes }, streams: streams.map((s) => ({ name: s.name, lastSeq: s.lastSeq, messages: s.messages })) }, 'backup written');
    return { archive, bytes, durationMs, manifest, pooled: { added: pooled.added, addedBytes: pooled.addedBytes } };
  } finally {
    await release?.().catch(() => {}); // released already after the export; if this fails, the lease runs out (3 minutes)
    await bus.nc.close().catch(() => {});
    await rm(staging, { recursive: true, force: true });
  }
}

interface StreamState {
  key: string;
  name: string;
  firstSeq: number;
  lastSeq: number;
  messages: number;
  consumers: ConsumerRecord[];
}

async function streamState(bus: Bus, key: string, name: string): Promise<StreamState> {
  const info = await bus.jsm.streams.info(name).catch((error: unknown) => {
    throw new Error(`stream ${name} cannot be read (${(error as Error).message}): is PARLEY_NAMESPACE right, and has Parley run in it?`);
  });
  const consumers: ConsumerRecord[] = [];
  for await (const c of bus.jsm.consumers.list(name)) {
    if (!c.config.durable_name) continue; // ephemeral readers (gateways, this export) are not state
    const filter = c.config.filter_subject;
    consumers.push({
      name: c.config.durable_name,
      ...(filter ? { filterSubject: filter.slice(filter.indexOf('.') + 1) } : {}),
      ackWaitNanos: c.config.ack_wait,
      maxAckPending: c.config.max_ack_pending,
      maxDeliver: c.config.max_deliver,
    });
  }
  consumers.sort((a, b) => a.name.localeCompare(b.name));
  return { key, name, firstSeq: info.state.first_seq, lastSeq: info.state.last_seq, messages: info.state.messages, consumers };
}

/**
 * A run that was killed (SIGKILL, OOM, a node lost) never reached its clean-up: its staging folder
 * (a full copy of every attachment) and its `.partial` archive stay, and the volume fills (issue
 * 20). Each run removes what earlier runs left, once it is older than any run may last (the
 * CronJob's activeDeadlineSeconds is 2 h), so a run going on beside this one is never touched.
 */
export const STALE_STAGING_MS = 3 * 3600_000;

export async function removeStaleStaging(dir: string, log: Logger, now = Date.now()): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    if (!name.startsWith('.parley-backup-') && !name.endsWith('.tar.gz.partial')) continue;
    const at = path.join(dir, name);
    const info = await stat(at).catch(() => null);
    if (!info || now - info.mtimeMs < STALE_STAGING_MS) continue;
    await rm(at, { recursive: true, force: true });
    removed.push(name);
  }
  if (removed.length > 0) log.warn({ removed }, 'removed what killed backup runs left behind');
  return removed;
}

async function exportStreams(bus: Bus, ns: string, staging: string, states: (StreamState & { oneMessagePerSubject: boolean })[], into: StreamPart[], log: Logger): Promise<void> {
  // The streams keeping one message per subject (receipts) go first, read on until caught up
  // (below), and every other stream's end is read again when its export starts: a receipt names a
  // chat event stored before it, so the chats stream, read after, holds every event a receipt of
  // the archive names. With every end taken at the snapshot, a receipt caught up past it could
  // name a message the archive does not hold, and the restored chat showed it read on arrival.
  // Any end read after the snapshot keeps the dump's checkpoints at or below it.
  const ordered = [...states.filter((s) => s.oneMessagePerSubject), ...states.filter((s) => !s.oneMessagePerSubject)];
  const parts = new Map<string, StreamPart>();
  for (const atSnapshot of ordered) {
    const s = atSnapshot.oneMessagePerSubject ? atSnapshot : { ...(await streamState(bus, atSnapshot.key, atSnapshot.name)), oneMessagePerSubject: false };
    const part = `streams/${s.key}.ndjson`;
    const file = path.join(staging, part);
    // An empty stream has nothing to read (and nothing would arrive to end the read).
    // A stream keeping one message per subject is read on until caught up (exportStream): a
    // receipt replaced while the export ran is at a sequence past the end read before.
    const { messages, digest, lastSeq } = await exportStream(bus, ns, s.name, s.messages === 0 ? 0 : s.lastSeq, file, { oneMessagePerSubject: s.oneMessagePerSubject });
    parts.set(s.key, { key: s.key, name: s.name, path: part, bytes: (await stat(file)).size, sha256: await sha256File(file), firstSeq: s.firstSeq, lastSeq: Math.max(s.lastSeq, lastSeq), messages, digest, consumers: s.consumers });
    log.debug({ stream: s.name, messages, lastSeq }, 'stream exported');
  }
  // The manifest lists them in declaration order, as before.
  for (const s of states) into.push(parts.get(s.key)!);
}
