import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { connectBus, type Bus } from '@parley/bus';
import { inNamespace, verifyNamespace } from '@parley/contracts';
import type { Logger } from '@parley/log';
import { dropDatabase } from '@parley/pg';
import { unpackArchive } from './archive.js';
import { attachmentSource, requireAttachments } from './attachments.js';
import { snapshotFigures } from './database.js';
import { backupIdentity, type BackupConfig } from './env.js';
import { listFiles, sha256File } from './files.js';
import type { Manifest } from './manifest.js';
import { restoreData, type Target } from './restore.js';
import { digestStream } from './streams.js';

export interface VerifyReport {
  ok: boolean;
  /** One line per check, for people. */
  lines: string[];
  problems: string[];
  durationMs: number;
}

/**
 * `verify <archive>`: checksums (the archive's own and every part's), then a restore of the data
 * into a scratch database and namespace on the same servers, then a comparison with the manifest:
 * every table's row count, every chat's history digest and the projection checkpoints (all from the
 * dump's snapshot), every stream's sequences, message count and content digest read back from
 * NATS, and the attachment files. The scratch database, streams and files are removed afterwards.
 * On success a `<archive>.verified` marker is written, which rotation never deletes the newest of.
 *
 * A corrupt or truncated archive throws CorruptArchiveError before anything is restored.
 */
export async function runVerify(config: BackupConfig, archive: string, log: Logger): Promise<VerifyReport> {
  const started = Date.now();
  const lines: string[] = [];
  const problems: string[] = [];
  const tmp = await mkdtemp(path.join(config.BACKUP_TMP_DIR ?? os.tmpdir(), 'parley-verify-'));
  const extracted = path.join(tmp, 'archive');
  const id = randomBytes(4).toString('hex');
  const scratchPrefix = scratchDatabasePrefix(config.PARLEY_NAMESPACE);
  const scratchUrl = new URL(config.DATABASE_URL);
  scratchUrl.pathname = `/${scratchPrefix}${id}`;
  // The scratch namespace is fixed per installation (verifyNamespace: the backup job's bus
  // permissions name it), so two verify runs at once would share it: run them one at a time.
  const target: Target = { databaseUrl: scratchUrl.toString(), namespace: verifyNamespace(config.PARLEY_NAMESPACE), attachmentsDir: path.join(tmp, 'attachments') };
  let bus: Bus | undefined;
  try {
    await mkdir(extracted);
    const manifest = await unpackArchive(archive, extracted);
    const parts = 1 + manifest.streams.length + (manifest.attachments.pool ? 0 : manifest.attachments.files.length);
    lines.push(`checksums: ${parts} parts match the manifest (namespace ${manifest.namespace}, taken ${manifest.createdAt})`);
    await requireAttachments(attachmentSource(archive, manifest, extracted), manifest.attachments.files, manifest.attachments.pool !== undefined);
    if (manifest.attachments.pool) lines.push(`attachments: ${manifest.attachments.files.length} files present in ${manifest.attachments.pool}/ beside the archive, SHA-256 checked`);
    bus = await connectBus({ url: config.NATS_URL, name: 'backup-verify', log, identity: backupIdentity(config) });
    await dropNamespaceStreams(bus, target.namespace); // left by a verify that was killed
    // And its scratch database (a copy of every message: a kill, an OOM or the CronJob's deadline
    // skip the cleanup below, and nothing else ever dropped it). One verify at a time, as above.
    await dropLeftScratchDatabases(config.DATABASE_URL, scratchPrefix, log);
    await restoreData(bus, archive, extracted, manifest, target, config, log);
    await compareDatabase(manifest, target.databaseUrl, lines, problems);
    await compareStreams(bus, manifest, target.namespace, lines, problems);
    await compareAttachments(manifest, target.attachmentsDir, lines, problems);
    checkConsistency(manifest, lines, problems);
  } finally {
    if (bus) {
      await dropNamespaceStreams(bus, target.namespace).catch(() => {});
      await bus.nc.close().catch(() => {});
    }
    await dropDatabase(target.databaseUrl).catch((error: unknown) => log.warn({ err: error }, 'could not drop the scratch database'));
    // A failed unpack may still have file writes in flight (node-tar rejects at the first error):
    // retry the removal, and never let a cleanup failure hide the reason verify failed.
    await rm(tmp, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }).catch((error: unknown) => log.warn({ err: error, dir: tmp }, 'could not remove the scratch directory'));
  }
  const ok = problems.length === 0;
  if (ok) await writeFile(`${archive}.verified`, `${JSON.stringify({ verifiedAt: new Date().toISOString(), lines })}\n`);
  return { ok, lines, problems, durationMs: Date.now() - started };
}

/** This installation's scratch databases: `parley_verify_<namespace>_<8 hex>` (`-` as `_`). */
function scratchDatabasePrefix(namespace: string): string {
  return `parley_verify_${namespace.replace(/-/g, '_')}_`;
}

async function dropLeftScratchDatabases(databaseUrl: string, prefix: string, log: Logger): Promise<void> {
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  let names: string[];
  try {
    names = (await client.query<{ datname: string }>('SELECT datname FROM pg_database')).rows.map((r) => r.datname);
  } finally {
    await client.end();
  }
  for (const name of names.filter((n) => n.startsWith(prefix) && /^[0-9a-f]{8}$/.test(n.slice(prefix.length)))) {
    const url = new URL(databaseUrl);
    url.pathname = `/${name}`;
    await dropDatabase(url.toString());
    log.warn({ database: name }, 'dropped the scratch database of a verify that did not finish');
  }
}

async function compareDatabase(manifest: Manifest, databaseUrl: string, lines: string[], problems: string[]): Promise<void> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const restored = await snapshotFigures(db);
    const expected = manifest.database;
    let rows = 0;
    for (const [table, n] of Object.entries(expected.tables)) {
      const got = restored.tables[table];
      if (got !== n) problems.push(`table ${table}: ${got ?? 'missing'} rows, the manifest says ${n}`);
      rows += n;
    }
    for (const table of Object.keys(restored.tables)) if (!(table in expected.tables)) problems.push(`table ${table} is not in the manifest`);
    lines.push(`database: ${Object.keys(expected.tables).length} tables, ${rows} rows`);
    let messages = 0;
    let differing = 0;
    for (const [chat, h] of Object.entries(expected.chats)) {
      const got = restored.chats[chat];
      messages += h.messages;
      if (!got || got.messages !== h.messages || got.digest !== h.digest) {
        differing++;
        if (differing <= 5) problems.push(`chat ${chat}: ${got?.messages ?? 0} messages (digest ${got?.digest ?? '-'}), the manifest says ${h.messages} (${h.digest})`);
      }
    }
    if (Object.keys(restored.chats).length !== Object.keys(expected.chats).length) problems.push(`${Object.keys(restored.chats).length} chats with messages, the manifest says ${Object.keys(expected.chats).length}`);
    if (differing > 5) problems.push(`… and ${differing - 5} more chats differ`);
    lines.push(`history: ${Object.keys(expected.chats).length} chats, ${messages} messages, ${Object.keys(expected.chats).length - differing} identical`);
    if (JSON.stringify(restored.checkpoints) !== JSON.stringify(expected.checkpoints)) problems.push(`projection checkpoints ${JSON.stringify(restored.checkpoints)} differ from the manifest's ${JSON.stringify(expected.checkpoints)}`);
  } finally {
    await db.end();
  }
}

async function compareStreams(bus: Bus, manifest: Manifest, ns: string, lines: string[], problems: string[]): Promise<void> {
  for (const part of manifest.streams) {
    const name = part.name.replace(manifest.namespace, ns);
    const info = await bus.jsm.streams.info(name);
    const read = part.messages === 0 ? { messages: 0, digest: part.digest } : await digestStream(bus, ns, name, part.lastSeq);
    if (info.state.last_seq !== part.lastSeq) problems.push(`stream ${part.key}: last sequence ${info.state.last_seq}, the manifest says ${part.lastSeq}`);
    if (info.state.messages !== part.messages || read.messages !== part.messages) problems.push(`stream ${part.key}: ${info.state.messages} messages, the manifest says ${part.messages}`);
    if (read.digest !== part.digest) problems.push(`stream ${part.key}: content digest differs from the manifest`);
    lines.push(`stream ${part.key}: ${part.messages} messages, sequences ${part.messages > 0 ? `${part.firstSeq}…` : ''}${part.lastSeq}`);
  }
}

async function compareAttachments(manifest: Manifest, dir: string, lines: string[], problems: string[]): Promise<void> {
  const files = await listFiles(dir);
  if (files.length !== manifest.attachments.files.length) problems.push(`attachments: ${files.length} files restored, the manifest says ${manifest.attachments.files.length}`);
  for (const f of manifest.attachments.files) {
    const got = await sha256File(path.join(dir, path.relative('attachments', f.path))).catch(() => null);
    if (got !== f.sha256) problems.push(`attachment ${f.path}: ${got ? 'content differs' : 'missing'}`);
  }
  lines.push(`attachments: ${manifest.attachments.files.length} files, ${manifest.attachments.bytes} bytes`);
}

/**
 * The property that makes a live backup whole: each projector's checkpoint (in the dump) is at or
 * below the end of its exported stream, so a replay after restore covers everything in between.
 */
function checkConsistency(manifest: Manifest, lines: string[], problems: string[]): void {
  let n = 0;
  for (const part of manifest.streams) {
    for (const c of part.consumers) {
      const checkpoint = Object.entries(manifest.database.checkpoints).find(([k]) => k.endsWith(`.${c.name}`))?.[1] ?? 0;
      if (checkpoint > part.lastSeq) problems.push(`projector ${c.name}: checkpoint ${checkpoint} is beyond stream ${part.key}'s end ${part.lastSeq}`);
      n++;
    }
  }
  lines.push(`consistency: ${n} projector checkpoints within their streams' exported range`);
}

async function dropNamespaceStreams(bus: Bus, ns: string): Promise<void> {
  const names: string[] = [];
  for await (const name of bus.jsm.streams.names()) if (inNamespace(name, ns)) names.push(name);
  for (const name of names) await bus.jsm.streams.delete(name).catch(() => {});
}
