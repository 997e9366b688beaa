import { spawn, type ChildProcess } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { importLedger } from '@parley/retention';
import { callRpc, connectBus, ensureStreams, InvalidRequestError, isNoResponders, isNotFound, RequestRefusedError, ServiceUnavailableError, type Bus } from '@parley/bus';
import { declaredStreams, inNamespace, streamName, type StreamKey } from '@parley/contracts';
import type { Logger } from '@parley/log';
import { ensureDatabase } from '@parley/pg';
import { unpackArchive } from './archive.js';
import { attachmentSource, emptyAttachmentStore, requireAttachments, restoreAttachments } from './attachments.js';
import { retentionOf } from './backup.js';
import { dropUserSchemas, restoreDatabase, run, userTables } from './database.js';
import { backupIdentity, type BackupConfig } from './env.js';
import { DATABASE_PART, type Manifest } from './manifest.js';
import { ROOT } from './paths.js';
import { copyStream, importStream, mergeStream } from './streams.js';

/** Where one restore goes: a database, a namespace, an attachment directory. */
export interface Target {
  databaseUrl: string;
  namespace: string;
  attachmentsDir: string;
}

export class TargetNotEmptyError extends Error {
  override name = 'TargetNotEmptyError';
}

/** Something the restore needs is missing (checked before the target is touched): it changed nothing. */
export class RestoreCheckError extends Error {
  override name = 'RestoreCheckError';
}

/** restore --force found users or messages answering on the target namespace: it changed nothing. */
export class ServicesRunningError extends Error {
  override name = 'ServicesRunningError';
}

/** The retention build is missing: the data is restored, but erasures were not applied again. */
export class RetentionMissingError extends Error {
  override name = 'RetentionMissingError';
}

/** What already lives in the target (tables, streams, files); empty means safe to restore into. */
export async function targetContents(bus: Bus, target: Target): Promise<string[]> {
  const found: string[] = [];
  const tables = await userTables(target.databaseUrl);
  if (tables.length > 0) found.push(`${tables.length} tables in ${redactDb(target.databaseUrl)} (${tables.slice(0, 3).join(', ')}${tables.length > 3 ? ', …' : ''})`);
  const streams = await namespaceStreams(bus, target.namespace);
  if (streams.length > 0) found.push(`streams ${streams.join(', ')}`);
  const files = await readdir(target.attachmentsDir).catch(() => []);
  if (files.length > 0) found.push(`files in ${target.attachmentsDir}`);
  return found;
}

/**
 * Whether the source's ledger or revocations can be read here: the stream exists on this server,
 * and the backup job's bus user may read it (`npm run secrets -- --ledger-from <ns>` grants that).
 */
async function sourceReadable(bus: Bus, name: string, what: 'erasures' | 'revocations', log: Logger): Promise<boolean> {
  try {
    return await streamExists(bus, name);
  } catch (error) {
    const lost = what === 'erasures' ? 'erasure ledger: accounts erased there after the backup are not erased here' : 'revocations: sessions revoked there after the backup are not revoked here';
    log.warn({ stream: name, err: { message: (error as Error).message } }, `cannot read the source namespace's ${lost}`);
    return false;
  }
}

async function streamExists(bus: Bus, name: string): Promise<boolean> {
  return bus.jsm.streams.info(name).then(
    () => true,
    (error: unknown) => {
      if (isNotFound(error)) return false;
      throw error;
    },
  );
}

async function namespaceStreams(bus: Bus, ns: string): Promise<string[]> {
  const names: string[] = [];
  for await (const name of bus.jsm.streams.names()) if (inNamespace(name, ns)) names.push(name);
  return names.sort();
}

/**
 * Streams restore --force keeps, adding the archive's entries they lack, instead of replacing them
 * with the archive's copy: what they hold since the backup must outlive the restore.
 * - the erasure ledger names everyone erased since the backup, whom the retention pass after the
 *   restore erases again;
 * - the revocations name every session revoked since the backup (logout, password change or
 *   reset, refresh-token theft): gateways check access tokens only by signature, expiry and this
 *   list, read from the stream's start at their start. Replaced by the archive's copy, a token
 *   revoked after the backup (a stolen one, say) was accepted again until it expired (found in
 *   review). Nothing refers to its sequences (no projection, no checkpoint), so new ones are fine.
 * Both only grow (each subject is one ledger entry or one revoked session), so the live stream
 * with the archive's entries added covers both.
 */
const KEPT_STREAMS: ReadonlySet<StreamKey> = new Set<StreamKey>(['erasures', 'revocations']);

/**
 * restore --force: empties the target first (schemas dropped, streams deleted, files removed),
 * except the streams in KEPT_STREAMS.
 */
async function clearTarget(bus: Bus, target: Target): Promise<void> {
  await dropUserSchemas(target.databaseUrl).catch((error: { code?: string }) => {
    if (error.code !== '3D000') throw error;
  });
  const kept = new Set([...KEPT_STREAMS].map((key) => streamName(target.namespace, key)));
  for (const name of await namespaceStreams(bus, target.namespace)) if (!kept.has(name)) await bus.jsm.streams.delete(name);
  await emptyAttachmentStore(target.attachmentsDir);
}

/**
 * What the restore needs that can be checked before the target is touched: restore --force empties
 * the target first, and these used to fail only after it had (the schemas dropped, the streams
 * deleted, the files removed), leaving nothing (found in review):
 * - pg_restore on the PATH, able to read the dump (`--list` reads its table of contents only: a
 *   client older than the dump's format refuses it there);
 * - every stream of the archive declared by this version of Parley;
 * - the attachment store writable (the nearest existing folder of ATTACHMENTS_DIR, and each folder
 *   in it, whose files --force removes): a read-only mount failed with EROFS half-way through.
 */
async function checkRestorable(manifest: Manifest, extracted: string, target: Target, config: BackupConfig): Promise<void> {
  const unchanged = 'Nothing in the target was changed';
  await run('pg_restore', ['--list', path.join(extracted, DATABASE_PART)]).catch((error: unknown) => {
    throw new RestoreCheckError(`pg_restore cannot read the archive's database dump (made by ${manifest.versions.pgDump}): put a PostgreSQL client of that version or newer on the PATH. ${unchanged}. ${(error as Error).message}`, { cause: error });
  });
  const declared = declaredStreams(target.namespace, retentionOf(config), config.STREAM_REPLICAS) as Record<string, unknown>;
  const unknown = manifest.streams.map((part) => part.key).filter((key) => !declared[key]);
  if (unknown.length > 0) {
    throw new RestoreCheckError(`the archive holds stream${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}, which this version of Parley does not declare: restore it with the version that made it (${manifest.versions.parley}). ${unchanged}`);
  }
  await checkWritable(target.attachmentsDir).catch((error: unknown) => {
    throw new RestoreCheckError(`the attachment store ${target.attachmentsDir} is not writable (${(error as Error).message}). ${unchanged}`, { cause: error });
  });
}

/** Throws unless `dir` (or, while it does not exist, its nearest existing parent) and each folder in it can be written. */
async function checkWritable(dir: string): Promise<void> {
  let existing = path.resolve(dir);
  while (!(await stat(existing).then((s) => s.isDirectory(), () => false))) {
    const parent = path.dirname(existing);
    if (parent === existing) break;
    existing = parent;
  }
  // access() with W_OK reports a read-only file system (EROFS) even to root, whom it lets write anywhere else.
  await access(existing, constants.W_OK);
  const entries = await readdir(existing, { withFileTypes: true }).catch(() => []);
  if (existing === path.resolve(dir)) for (const e of entries) if (e.isDirectory()) await access(path.join(existing, e.name), constants.W_OK);
}

/**
 * Which of users and messages run on `namespace` now. Only NATS's "no responders" means a service
 * is down; any answer (even a refusal or a failure) means it is up, and so does no answer within
 * `timeoutMs`: something is subscribed to its subject, too busy to answer.
 */
export async function runningServices(bus: Bus, namespace: string, timeoutMs = 2_000): Promise<string[]> {
  const answers = await Promise.all(
    (['users.ping', 'messages.ping'] as const).map((method) =>
      callRpc(bus, namespace, method, {}, timeoutMs).then(
        () => true,
        (error: unknown) => {
          if (error instanceof ServiceUnavailableError || error instanceof RequestRefusedError || error instanceof InvalidRequestError) return !isNoResponders(error);
          throw error;
        },
      ),
    ),
  );
  return ['users', 'messages'].filter((_, i) => answers[i]);
}

function redactDb(url: string): string {
  const u = new URL(url);
  return `${u.host}${u.pathname}`;
}

/**
 * The data part of a restore, shared with verify: the database from the dump, every stream at its
 * original sequences (under the target namespace), the streams the archive lacks created empty,
 * the attachment files. Projections are as of the dump; nothing is replayed yet.
 */
export async function restoreData(bus: Bus, archive: string, extracted: string, manifest: Manifest, target: Target, config: BackupConfig, log: Logger): Promise<void> {
  await ensureDatabase(target.databaseUrl);
  await restoreDatabase(target.databaseUrl, path.join(extracted, DATABASE_PART));
  log.info({ tables: Object.keys(manifest.database.tables).length }, 'database restored');
  const declarations = declaredStreams(target.namespace, retentionOf(config), config.STREAM_REPLICAS);
  for (const part of manifest.streams) {
    const decl = (declarations as Record<string, (typeof declarations)[keyof typeof declarations] | undefined>)[part.key];
    if (!decl) throw new Error(`the archive holds stream "${part.key}", which this version of Parley does not declare`);
    if (KEPT_STREAMS.has(part.key as StreamKey) && (await streamExists(bus, decl.name))) {
      // The target's stream is kept (it may name people erased, or sessions revoked, since the
      // backup), and the archive's entries are added to it: a target whose stream is empty or only
      // newer (the users service recreates it at start, say after JetStream's data was lost) forgot
      // everyone erased before the backup, and a later restore of an older archive brought them
      // back (found in review); likewise the sessions revoked before the backup.
      const added = await mergeStream(bus, decl.name, target.namespace, path.join(extracted, part.path));
      log.info({ stream: decl.name, added }, 'stream of the target kept, with the archive\'s entries added');
      continue;
    }
    const count = await importStream(bus, decl, target.namespace, path.join(extracted, part.path), part);
    log.info({ stream: decl.name, messages: count, lastSeq: part.lastSeq }, 'stream restored');
  }
  // Streams declared now but absent from the archive (added since) start empty; configs aligned.
  await ensureStreams(bus.jsm, Object.values(declarations), log);
  await restoreAttachments(attachmentSource(archive, manifest, extracted), manifest.attachments.files, target.attachmentsDir);
}

/**
 * Recreates the projectors' durable consumers so that each starts just after its projection's
 * checkpoint in the restored database (the services' projectors keep an existing consumer).
 * Without this they would be created anew and re-read every stream from its start, skipping
 * event by event up to the checkpoint.
 */
async function restoreConsumers(bus: Bus, manifest: Manifest, namespace: string, checkpoints: Map<string, number>): Promise<void> {
  for (const part of manifest.streams) {
    const stream = part.name.replace(manifest.namespace, namespace);
    for (const c of part.consumers) {
      const checkpoint = checkpoints.get(c.name) ?? 0;
      await bus.jsm.consumers.add(stream, {
        durable_name: c.name,
        ack_policy: AckPolicy.Explicit,
        ...(c.filterSubject ? { filter_subject: `${namespace}.${c.filterSubject}` } : {}),
        ...(c.ackWaitNanos ? { ack_wait: c.ackWaitNanos } : {}),
        ...(c.maxAckPending ? { max_ack_pending: c.maxAckPending } : {}),
        ...(c.maxDeliver ? { max_deliver: c.maxDeliver } : {}),
        ...(checkpoint > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: checkpoint + 1 } : { deliver_policy: DeliverPolicy.All }),
      });
    }
  }
}

async function readCheckpoints(databaseUrl: string): Promise<Map<string, number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows: schemas } = await client.query<{ s: string }>(`SELECT table_schema AS s FROM information_schema.tables WHERE table_name = 'projection_checkpoints'`);
    const result = new Map<string, number>();
    for (const { s } of schemas) {
      const { rows } = await client.query<{ projector: string; stream_seq: string }>(`SELECT projector, stream_seq FROM ${pg.escapeIdentifier(s)}.projection_checkpoints`);
      for (const r of rows) result.set(r.projector, Number(r.stream_seq));
    }
    return result;
  } finally {
    await client.end();
  }
}

export interface RestoreOptions {
  force: boolean;
  /** The environment the services and the retention pass are started with (the operator's). */
  childEnv: Record<string, string | undefined>;
}

export interface RestoreReport {
  manifest: Manifest;
  replayed: Record<string, number>;
  sessionsCleared: number;
  resetTokensCleared: number;
  durationMs: number;
}

/**
 * `restore <archive> [--force]` into DATABASE_URL / PARLEY_NAMESPACE / ATTACHMENTS_DIR:
 *
 * 1. Check the archive (checksums), refuse a target that holds anything unless --force.
 * 2. Restore the data (restoreData), recreate the projectors' consumers after their checkpoints.
 * 3. Start the users and messages services (their dist/main.js) so their projectors replay the
 *    events newer than the checkpoints; wait until every consumer has nothing pending.
 * 4. Clear sessions and reset tokens: everyone signs in again, no old reset link works.
 * 5. One retention pass (services/retention): past-retention data goes, and the erasure ledger is
 *    applied again, so nobody erased since the backup comes back. It needs the services running.
 *    The ledger is the target's own when restoring in place (--force keeps it), else the source
 *    namespace's is imported (`--ledger-from`) when it lives on the same NATS server.
 * 6. Stop the services.
 */
export async function runRestore(config: BackupConfig, archive: string, options: RestoreOptions, log: Logger): Promise<RestoreReport> {
  const started = Date.now();
  const target: Target = { databaseUrl: config.DATABASE_URL, namespace: config.PARLEY_NAMESPACE, attachmentsDir: config.ATTACHMENTS_DIR };
  const retentionMain = path.join(ROOT, 'services', 'retention', 'dist', 'main.js');
  const serviceMains = ['users', 'messages'].map((s) => path.join(ROOT, 'services', s, 'dist', 'main.js'));
  for (const main of serviceMains) {
    if (!existsSync(main)) throw new Error(`${main} is missing: build first (npm run build)`);
  }
  const extracted = await mkdtemp(path.join(config.BACKUP_TMP_DIR ?? os.tmpdir(), 'parley-restore-'));
  const bus = await connectBus({ url: config.NATS_URL, name: 'backup-restore', log, identity: backupIdentity(config) });
  const children: ChildProcess[] = [];
  try {
    const manifest = await unpackArchive(archive, extracted);
    // Before anything is replaced: an archive copied without the pool beside it cannot restore.
    await requireAttachments(attachmentSource(archive, manifest, extracted), manifest.attachments.files, manifest.attachments.pool !== undefined);
    await checkRestorable(manifest, extracted, target, config);
    const inUse = await targetContents(bus, target);
    if (inUse.length > 0) {
      if (!options.force) throw new TargetNotEmptyError(`the target is not empty (${inUse.join('; ')}); restore into an empty database and namespace, or pass --force to replace it`);
      // Services still running on the target would write into it while it is emptied and refilled
      // (and their projectors would hold stale consumers): --force wiped it under them.
      const running = await runningServices(bus, target.namespace);
      if (running.length > 0) {
        throw new ServicesRunningError(`restore --force: ${running.join(' and ')} ${running.length > 1 ? 'are' : 'is'} running on namespace ${target.namespace}; stop every Parley service (gateway, users, messages) first. Nothing was changed`);
      }
      log.warn({ replacing: inUse }, 'restore --force: emptying the target');
      await clearTarget(bus, target);
    }
    await restoreData(bus, archive, extracted, manifest, target, config, log);
    const checkpoints = await readCheckpoints(target.databaseUrl);
    await restoreConsumers(bus, manifest, target.namespace, checkpoints);
    // Restored elsewhere than where it was taken: the sessions the source revoked after the backup
    // (if it lives on this NATS server) stay revoked, or the target's gateways, given the same
    // JWT_SECRET, accepted their access tokens until they expired. In place, --force kept them.
    const source = manifest.namespace;
    if (source !== target.namespace && (await sourceReadable(bus, streamName(source, 'revocations'), 'revocations', log))) {
      const imported = await copyStream(bus, { stream: streamName(source, 'revocations'), namespace: source }, { stream: streamName(target.namespace, 'revocations'), namespace: target.namespace });
      log.info({ from: source, imported }, 'revocations of the source imported');
    }

    const env = { ...options.childEnv, METRICS_PORT: '0', PORT: '0' };
    for (const main of serviceMains) children.push(startChild(main, env, log));
    const replayed = await waitForProjections(bus, manifest, target.namespace, checkpoints, children, config.BACKUP_REPLAY_TIMEOUT_SECONDS * 1000);
    log.info({ replayed }, 'projections caught up');

    // Caught-up projections do not mean the services answer yet (with nothing to replay the wait
    // above returns at once): the retention pass needs their RPCs.
    await waitForResponders(bus, target.namespace, config.BACKUP_REPLAY_TIMEOUT_SECONDS * 1000);
    const cleared = await clearCredentials(bus, target);
    log.info(cleared, 'sessions and reset tokens cleared');

    if (!existsSync(retentionMain)) {
      throw new RetentionMissingError(
        `retention pass NOT run: ${retentionMain} does not exist (build services/retention). The data is restored, but ` +
          'the erasure ledger and the retention policy have not been applied again: run `node services/retention/dist/main.js` with the services up before opening the system',
      );
    }
    // Restored elsewhere than where it was taken: the source system's ledger (if it lives on this
    // NATS server) knows who was erased after the backup; the pass imports it first.
    // Copied here, as the backup job (retention's own credentials may only read the ledger).
    if (source !== target.namespace && (await sourceReadable(bus, streamName(source, 'erasures'), 'erasures', log))) {
      const imported = await importLedger(bus, source, target.namespace);
      log.info({ from: source, imported }, 'erasure ledger of the source imported');
    }
    await runChild(retentionMain, [], env, log);
    return { manifest, replayed, sessionsCleared: cleared.sessions, resetTokensCleared: cleared.resetTokens, durationMs: Date.now() - started };
  } finally {
    await Promise.all(children.map(stopChild));
    await bus.nc.close().catch(() => {});
    // As in verify: a failed unpack may still be writing; retry, and keep the real error.
    await rm(extracted, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }).catch((error: unknown) => log.warn({ err: error, dir: extracted }, 'could not remove the unpacked archive'));
  }
}

/** Waits until every projector consumer has applied everything in its stream; returns events replayed per projector. */
async function waitForProjections(bus: Bus, manifest: Manifest, ns: string, checkpoints: Map<string, number>, children: ChildProcess[], timeoutMs: number): Promise<Record<string, number>> {
  const deadline = Date.now() + timeoutMs;
  const wanted = manifest.streams.flatMap((p) => p.consumers.map((c) => ({ stream: p.name.replace(manifest.namespace, ns), name: c.name })));
  for (;;) {
    const dead = children.find((c) => c.exitCode !== null);
    if (dead) throw new Error(`a service exited (code ${dead.exitCode}) while replaying; see its log above`);
    const infos = await Promise.all(wanted.map((w) => bus.jsm.consumers.info(w.stream, w.name).catch((e: unknown) => (isNotFound(e) ? null : Promise.reject(e)))));
    if (infos.every((i) => i && i.num_pending === 0 && i.num_ack_pending === 0)) {
      return Object.fromEntries(infos.map((i) => [i!.name, Math.max(0, i!.ack_floor.stream_seq - (checkpoints.get(i!.name) ?? 0))]));
    }
    if (Date.now() > deadline) throw new Error(`projections did not catch up within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Nobody is signed in after a restore, and no reset link from before it works: sessions are
 * service state (deleted), reset tokens are a projection of the resets stream (rows deleted and
 * the stream purged, so neither a replay nor a rebuild brings them back; its sequence stays).
 */
async function clearCredentials(bus: Bus, target: Target): Promise<{ sessions: number; resetTokens: number }> {
  const client = new pg.Client({ connectionString: target.databaseUrl });
  await client.connect();
  try {
    const sessions = await client.query('DELETE FROM users.sessions');
    const resets = await client.query('DELETE FROM users.password_resets');
    await bus.jsm.streams.purge(declaredStreams(target.namespace).resets.name);
    return { sessions: sessions.rowCount ?? 0, resetTokens: resets.rowCount ?? 0 };
  } finally {
    await client.end();
  }
}

function startChild(main: string, env: Record<string, string | undefined>, log: Logger): ChildProcess {
  const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 2, 2] });
  log.info({ service: main, pid: child.pid }, 'service started for the replay');
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** Runs a one-shot command; its output goes to ours; a non-zero exit fails the restore. */
function runChild(main: string, args: string[], env: Record<string, string | undefined>, log: Logger): Promise<void> {
  return new Promise((resolve, reject) => {
    log.info({ command: main }, 'running');
    const child = spawn(process.execPath, [main, ...args], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${path.relative(ROOT, main)} exited with ${code}`))));
  });
}

/** Resolves once the users and messages services of `namespace` answer their internal requests. */
async function waitForResponders(bus: Bus, namespace: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await callRpc(bus, namespace, 'users.ping', {}, 1_000);
      await callRpc(bus, namespace, 'messages.ping', {}, 1_000);
      return;
    } catch (error) {
      // Only "not yet" is worth waiting out; a refused or invalid ping will not change.
      if (!(error instanceof ServiceUnavailableError)) throw error;
      if (Date.now() > deadline) throw new Error(`the restored services did not answer within ${timeoutMs} ms`, { cause: error });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
