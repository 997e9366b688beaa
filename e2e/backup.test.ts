import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@parley/log';
import { jetstreamManager } from '@nats-io/jetstream';
import { inNamespace } from '@parley/contracts';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { CorruptArchiveError, unpackArchive } from '../services/backup/src/archive.js';
import { runBackup, type BackupResult } from '../services/backup/src/backup.js';
import { snapshotFigures } from '../services/backup/src/database.js';
import { loadBackupEnv } from '../services/backup/src/env.js';
import { runRestore, ServicesRunningError, TargetNotEmptyError } from '../services/backup/src/restore.js';
import { runVerify } from '../services/backup/src/verify.js';
import { startUsersService } from '../services/users/src/service.js';
import { startMessagesService } from '../services/messages/src/service.js';
import { startGatewayService } from '../services/gateway/src/service.js';
import { http, register, startServices, startStack, storedMessages, type Account, type Stack } from './stack.js';

const root = path.resolve(import.meta.dirname, '..');
const log = createLogger({ service: 'backup-test', level: process.env.BACKUP_TEST_LOG_LEVEL ?? 'silent' });

interface Acked {
  chatId: string;
  messageId: string;
  seq: number;
  /** When the client had the answer (the acknowledgement). */
  at: number;
}

/** Every message of a chat as the API answers it, oldest first. */
async function history(stack: Pick<Stack, 'baseUrl'>, token: string, chatId: string): Promise<any[]> {
  const items: any[] = [];
  let cursor: string | null = null;
  do {
    const page: { status: number; body: any } = await http(stack, 'GET', `/api/v1/chats/${chatId}/messages?limit=200${cursor ? `&before=${cursor}` : ''}`, { token });
    expect(page.status).toBe(200);
    items.push(...page.body.items);
    cursor = page.body.nextCursor;
  } while (cursor);
  return items.reverse();
}

/** What a restore target holds: every table's rows, every stream's messages, every file. */
async function targetState(env: TestEnv, filesDir: string): Promise<{ tables: Record<string, number>; streams: Record<string, number>; files: string[] }> {
  const db = new pg.Client({ connectionString: env.databaseUrl });
  await db.connect();
  const { tables } = await snapshotFigures(db).finally(() => db.end());
  const nc = await env.connectNats();
  const streams: Record<string, number> = {};
  try {
    for await (const info of (await jetstreamManager(nc)).streams.list()) {
      if (inNamespace(info.config.name, env.namespace)) streams[info.config.name] = info.state.messages;
    }
  } finally {
    await nc.close();
  }
  const files = readdirSync(filesDir, { recursive: true, encoding: 'utf8' }).sort();
  return { tables, streams, files };
}

describe('backup, verify and restore (services/backup)', () => {
  let stack: Stack;
  let dir: string;
  let attachmentsDir: string;
  let ann: Account;
  let bob: Account;
  let cy: Account;
  let cyChat = '';
  const chats: string[] = [];
  let backup: BackupResult;
  const acked: Acked[] = [];
  let backupBegan = 0;
  let attachmentId = '';

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'parley-backups-'));
    attachmentsDir = mkdtempSync(path.join(tmpdir(), 'parley-backup-files-'));
    stack = await startStack({ ATTACHMENTS_DIR: attachmentsDir });
    [ann, bob] = [await register(stack, 'bk_ann'), await register(stack, 'bk_bob')];
    chats.push((await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id);
    chats.push((await http(stack, 'POST', '/api/v1/chats', { token: bob.accessToken, body: { type: 'group', title: 'backup', memberIds: [ann.id] } })).body.id);
    // Cy writes before the backup and erases the account after it.
    cy = await register(stack, 'bk_cy');
    cyChat = (await http(stack, 'POST', '/api/v1/chats', { token: cy.accessToken, body: { type: 'direct', userId: ann.id } })).body.id;
    expect((await http(stack, 'POST', `/api/v1/chats/${cyChat}/messages`, { token: cy.accessToken, body: { clientMsgId: 'cy-1', body: 'cy secret otter' } })).status).toBe(201);
    const form = new FormData();
    form.append('file', new Blob([Buffer.from('attached before the backup')], { type: 'text/plain' }), 'note.txt');
    const upload = await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${ann.accessToken}` }, body: form });
    attachmentId = ((await upload.json()) as { id: string }).id;
    const sent = await http(stack, 'POST', `/api/v1/chats/${chats[0]}/messages`, { token: ann.accessToken, body: { clientMsgId: 'with-file', body: 'see the zebra file', attachmentIds: [attachmentId] } });
    expect(sent.status).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(attachmentsDir, { recursive: true, force: true });
  });

  const config = (vars: Record<string, string>) => loadBackupEnv({ ...vars, LOG_LEVEL: 'silent' });

  it('backs up under continuous writes; the restore answers every message acknowledged before the backup began, with the same history and search, and keeps an account erased after the backup erased', async () => {
    // Two writers, one per chat, over HTTP, until told to stop.
    let writing = true;
    const writer = async (chatId: string, who: Account, tag: string) => {
      for (let i = 0; writing; ) {
        const answer = await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: who.accessToken, body: { clientMsgId: `${tag}-${i}`, body: `${tag} message ${i} walrus` } });
        // A loaded machine may answer 503 (not acknowledged): the client sends the same again.
        if (answer.status !== 201 && answer.status !== 200) continue;
        acked.push({ chatId, messageId: answer.body.id, seq: answer.body.seq, at: Date.now() });
        i++;
      }
    };
    // Bob reads the direct chat as it fills: receipts stored while the backup runs.
    const reader = async () => {
      let marked = '';
      while (writing) {
        const newest = acked.findLast((a) => a.chatId === chats[0]);
        if (!newest || newest.messageId === marked) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        if ((await http(stack, 'POST', `/api/v1/chats/${chats[0]}/read`, { token: bob.accessToken, body: { messageId: newest.messageId } })).status === 204) marked = newest.messageId;
      }
    };
    const writers = [writer(chats[0]!, ann, 'direct'), writer(chats[1]!, bob, 'group'), reader()];
    while (acked.length < 40) await new Promise((r) => setTimeout(r, 20));
    backupBegan = Date.now();
    backup = await runBackup(config(stack.vars), dir, log);
    const during = acked.filter((a) => a.at > backupBegan).length;
    await new Promise((r) => setTimeout(r, 300));
    writing = false;
    await Promise.all(writers);
    expect(during).toBeGreaterThan(0); // the writes really went on while the backup ran
    // Every receipt in the archive names a message the archive holds: the receipts, read on past
    // the snapshot, were once exported after the chats stream, whose end was read at the snapshot,
    // and a restored chat showed messages it did not hold as read.
    const unpacked = mkdtempSync(path.join(tmpdir(), 'parley-backup-parts-'));
    try {
      const manifest = await unpackArchive(backup.archive, unpacked);
      const part = (key: string) =>
        readFileSync(path.join(unpacked, manifest.streams.find((p) => p.key === key)!.path), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as { subject: string; data: string })
          .map((m) => ({ subject: m.subject, body: JSON.parse(Buffer.from(m.data, 'base64').toString()) }));
      const newestSeq = new Map<string, number>();
      for (const { subject, body } of part('chats')) if (subject.startsWith('chat.')) newestSeq.set(body.chatId, Math.max(newestSeq.get(body.chatId) ?? 0, body.seq));
      const receipts = part('receipts').filter((r) => r.body.type === 'ReadPositionUpdated' && r.body.data.chatId === chats[0]);
      expect(receipts.length).toBeGreaterThan(0);
      for (const r of receipts) expect(r.body.data.seq).toBeLessThanOrEqual(newestSeq.get(chats[0]!) ?? 0);
    } finally {
      rmSync(unpacked, { recursive: true, force: true });
    }
    // The archive and the pooled files hold password hashes, messages and files: the job's user's only.
    expect(statSync(backup.archive).mode & 0o077).toBe(0);
    const pooled = readFileSync(`${backup.archive}.files`, 'utf8').trim().split('\n');
    expect(pooled.length).toBeGreaterThan(0);
    for (const sha of pooled) expect(statSync(path.join(dir, 'files', sha.slice(0, 2), sha)).mode & 0o077).toBe(0);
    const erased = await http(stack, 'DELETE', '/api/v1/users/me', { token: cy.accessToken, body: { password: cy.password, purgeMessages: true } });
    expect(erased.status).toBeLessThan(300);
    // A session of Ann's revoked after the backup (signed in elsewhere, then logged out there).
    const elsewhere = await http(stack, 'POST', '/api/v1/auth/login', { body: { login: ann.username, password: ann.password } });
    expect((await http(stack, 'POST', '/api/v1/auth/logout', { token: elsewhere.body.accessToken })).status).toBe(204);
    expect(path.basename(backup.archive)).toMatch(new RegExp(`^parley-${stack.env.namespace}-\\d{8}T\\d{6}Z\\.tar\\.gz$`));
    expect(backup.manifest.attachments.files).toHaveLength(1);
    const chatsStream = backup.manifest.streams.find((s) => s.key === 'chats')!;
    const checkpoint = backup.manifest.database.checkpoints['messages.chats-projection']!;
    expect(checkpoint).toBeLessThanOrEqual(chatsStream.lastSeq);

    // Restore into a fresh, empty database and namespace (its own attachment directory).
    // On the same NATS server, so that the restore can import the source's erasure ledger (its
    // backup job may read it: secrets --ledger-from).
    const fresh = await createTestEnv({ shareNatsWith: stack.env, ledgersOf: [stack.env.namespace] });
    const freshFiles = mkdtempSync(path.join(tmpdir(), 'parley-restored-files-'));
    const vars = { ...fresh.env, ATTACHMENTS_DIR: freshFiles };
    try {
      const report = await runRestore(config(vars), backup.archive, { force: false, childEnv: { ...process.env, ...vars } }, log);
      expect(report.sessionsCleared).toBeGreaterThan(0);
      // Every session the source revoked, also after the backup, is revoked here: a gateway given
      // the same JWT_SECRET refuses its access token (the archive alone lacked the later ones).
      const [sourceNc, nc] = [await stack.env.connectNats(), await fresh.connectNats()];
      try {
        const revoked = async (n: typeof nc, ns: string) => (await storedMessages(n, `${ns}_revocations`)).map((m) => m.subject.slice(ns.length + 1)).sort();
        const sourceRevoked = await revoked(sourceNc, stack.env.namespace);
        expect(sourceRevoked.length).toBeGreaterThan(backup.manifest.streams.find((p) => p.key === 'revocations')!.messages);
        expect(await revoked(nc, fresh.namespace)).toEqual(sourceRevoked);
      } finally {
        await Promise.all([sourceNc.close(), nc.close()]);
      }
      // Nobody is signed in after a restore; no reset token survives it.
      const db = new pg.Client({ connectionString: fresh.databaseUrl });
      await db.connect();
      const left = (await db.query('SELECT (SELECT count(*) FROM users.sessions)::int AS s, (SELECT count(*) FROM users.password_resets)::int AS r')).rows[0];
      await db.end();
      expect(left).toEqual({ s: 0, r: 0 });

      const users = await startUsersService({ ...vars, PORT: '0', METRICS_PORT: '0' });
      const messages = await startMessagesService({ ...vars, PORT: '0', METRICS_PORT: '0' });
      const gateway = await startGatewayService({ ...vars, PORT: '0', METRICS_PORT: '0' });
      const restored = { baseUrl: `http://127.0.0.1:${gateway.port}` };
      try {
        // Sessions were cleared, and the old tokens were signed with another secret anyway: sign in again.
        const login = await http(restored, 'POST', '/api/v1/auth/login', { body: { login: ann.username, password: ann.password } });
        expect(login.status).toBe(200);
        const token = login.body.accessToken as string;
        expect((await http(restored, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: ann.refreshToken } })).status).toBe(401);

        for (const chatId of chats) {
          const before = acked.filter((a) => a.chatId === chatId && a.at <= backupBegan);
          const original = await history(stack, ann.accessToken, chatId);
          const copy = await history(restored, token, chatId);
          const ids = new Set(copy.map((m) => m.id));
          expect(before.filter((a) => !ids.has(a.messageId))).toEqual([]);
          // The same history, message for message, up to where the backup ends.
          expect(copy).toEqual(original.slice(0, copy.length));
        }
        // Search answers the same, within what the backup holds.
        const restoredIds = new Set((await Promise.all(chats.map((c) => history(restored, token, c)))).flat().map((m) => m.id));
        // Every hit, page by page: the writers may have stored more than one page of them.
        const search = async (s: Pick<Stack, 'baseUrl'>, t: string) => {
          const ids: string[] = [];
          for (let cursor: string | null = null; ; ) {
            const page: any = (await http(s, 'GET', `/api/v1/search?q=walrus&limit=100${cursor ? `&before=${encodeURIComponent(cursor)}` : ''}`, { token: t })).body;
            ids.push(...page.items.map((m: any) => m.id));
            cursor = page.nextCursor;
            if (!cursor) return ids;
          }
        };
        const originalHits = (await search(stack, ann.accessToken)).filter((id: string) => restoredIds.has(id));
        expect(await search(restored, token)).toEqual(originalHits);
        expect((await search(restored, token)).length).toBeGreaterThan(0);
        // Erased after the backup, erased after the restore: no login, no messages, no search hit.
        expect((await http(restored, 'POST', '/api/v1/auth/login', { body: { login: cy.username, password: cy.password } })).status).toBe(401);
        const cyHistory = await http(restored, 'GET', `/api/v1/chats/${cyChat}/messages?limit=200`, { token });
        expect(cyHistory.status === 404 || !JSON.stringify(cyHistory.body.items).includes('otter')).toBe(true);
        expect((await http(restored, 'GET', '/api/v1/search?q=otter', { token })).body.items).toEqual([]);
        // The attachment file came back with its message.
        const file = await fetch(`${restored.baseUrl}/api/v1/attachments/${attachmentId}`, { headers: { authorization: `Bearer ${token}` } });
        expect(file.status).toBe(200);
        expect(await file.text()).toBe('attached before the backup');
      } finally {
        await gateway.stop();
        await messages.stop();
        await users.stop();
      }
    } finally {
      await fresh.cleanup();
      rmSync(freshFiles, { recursive: true, force: true });
    }
  }, 240_000);

  it("restore --force keeps the target's erasure ledger and adds the archive's entries to it", async () => {
    // The target's ledger is kept (it may name people erased since the backup); it used to keep
    // only that, and an empty one (the users service makes it at start, say after JetStream's data
    // was lost) forgot everyone the archive's ledger named. Cy's erasure is in this backup's.
    const laterDir = path.join(dir, 'with-ledger');
    mkdirSync(laterDir, { recursive: true });
    const later = await runBackup(config(stack.vars), laterDir, log);
    const target = await createTestEnv({ shareNatsWith: stack.env });
    const files = mkdtempSync(path.join(tmpdir(), 'parley-forced-files-'));
    const vars = { ...target.env, ATTACHMENTS_DIR: files };
    try {
      const users = await startUsersService({ ...vars, PORT: '0', METRICS_PORT: '0' });
      await users.stop();
      const nc = await target.connectNats();
      try {
        const ledger = () => storedMessages(nc, `${target.namespace}_erasures`).then((all) => all.map((m) => m.subject));
        expect(await ledger()).toEqual([]);
        await runRestore(config(vars), later.archive, { force: true, childEnv: { ...process.env, ...vars } }, log);
        expect(await ledger()).toContain(`${target.namespace}.erasure.user.${cy.id}`);
      } finally {
        await nc.close();
      }
    } finally {
      await target.cleanup();
      rmSync(files, { recursive: true, force: true });
    }
  }, 180_000);

  it('restore --force keeps the sessions revoked after the backup revoked: a logged-out access token stays refused', async () => {
    // The revocations stream was replaced by the archive's copy: gateways, which check an access
    // token by signature, expiry and that stream, accepted a token revoked after the backup (a
    // stolen one the owner logged out, say) again until it expired.
    const own = path.join(dir, 'forced-revocations');
    mkdirSync(own, { recursive: true });
    const target = await createTestEnv({ shareNatsWith: stack.env });
    const files = mkdtempSync(path.join(tmpdir(), 'parley-revoked-files-'));
    const vars = { ...target.env, ATTACHMENTS_DIR: files, PORT: '0', METRICS_PORT: '0' };
    try {
      let services = await startServices(vars);
      const dee = await register(services, 'bk_dee');
      const { archive } = await runBackup(config(vars), own, log);
      expect((await http(services, 'POST', '/api/v1/auth/logout', { token: dee.accessToken })).status).toBe(204);
      expect((await http(services, 'GET', '/api/v1/users/me', { token: dee.accessToken })).status).toBe(401);
      await services.stop();
      await runRestore(config(vars), archive, { force: true, childEnv: { ...process.env, ...vars } }, log);
      services = await startServices(vars);
      try {
        // The restored system answers (a new login works), and the revoked token is still refused.
        const login = await http(services, 'POST', '/api/v1/auth/login', { body: { login: dee.username, password: dee.password } });
        expect(login.status).toBe(200);
        expect((await http(services, 'GET', '/api/v1/users/me', { token: login.body.accessToken })).status).toBe(200);
        expect((await http(services, 'GET', '/api/v1/users/me', { token: dee.accessToken })).status).toBe(401);
      } finally {
        await services.stop();
      }
    } finally {
      await target.cleanup();
      rmSync(files, { recursive: true, force: true });
    }
  }, 180_000);

  /**
   * A target a refused restore --force must leave as it was: a database and namespace of its own
   * whose tables and streams the services made (stopped again, or left `running`), and a file
   * already in its attachment store. `before` is its state; `cleanup` goes in `finally`.
   */
  async function filledTarget(name: string, options: { running?: boolean } = {}) {
    const target = await createTestEnv({ shareNatsWith: stack.env });
    const files = mkdtempSync(path.join(tmpdir(), `parley-${name}-files-`));
    mkdirSync(path.join(files, 'zz'));
    writeFileSync(path.join(files, 'zz', 'a-file-already-there'), 'kept');
    // Bounded, should a restore that ought to refuse go on to its replay.
    const vars = { ...target.env, ATTACHMENTS_DIR: files, BACKUP_REPLAY_TIMEOUT_SECONDS: '60' };
    const users = await startUsersService({ ...vars, PORT: '0', METRICS_PORT: '0' });
    const messages = await startMessagesService({ ...vars, PORT: '0', METRICS_PORT: '0' });
    const stopServices = async () => {
      await messages.stop();
      await users.stop();
    };
    if (!options.running) await stopServices();
    const before = await targetState(target, files);
    expect(Object.keys(before.tables).length).toBeGreaterThan(0);
    const cleanup = async () => {
      if (options.running) await stopServices();
      await target.cleanup();
      rmSync(files, { recursive: true, force: true });
    };
    return { target, files, vars, before, cleanup };
  }

  it('restore --force refuses while users and messages run on the target, and changes nothing', async () => {
    // It used to empty the target under the running services and restore into it.
    const own = path.join(dir, 'forced-while-running');
    mkdirSync(own, { recursive: true });
    const { archive } = await runBackup(config(stack.vars), own, log);
    const { target, files, vars, before, cleanup } = await filledTarget('running', { running: true });
    try {
      expect(Object.keys(before.streams).length).toBeGreaterThan(0);
      const restoring = runRestore(config(vars), archive, { force: true, childEnv: { ...process.env, ...vars } }, log);
      await expect(restoring).rejects.toThrow(ServicesRunningError);
      await expect(restoring).rejects.toThrow(/users and messages are running .*stop every Parley service/);
      expect(await targetState(target, files)).toEqual(before);
    } finally {
      await cleanup();
    }
  }, 180_000);

  it("restore --force checks the pool files' SHA-256 before it empties the target: one flipped byte fails it, the target untouched", async () => {
    // Only the copy into the target was checked, after --force had emptied it.
    const own = path.join(dir, 'forced-damaged-pool');
    mkdirSync(own, { recursive: true });
    const { archive } = await runBackup(config(stack.vars), own, log);
    const sha = readFileSync(`${archive}.files`, 'utf8').trim().split('\n')[0]!;
    const pooled = path.join(own, 'files', sha.slice(0, 2), sha);
    const bytes = readFileSync(pooled);
    bytes[0] = bytes[0]! ^ 0x01; // same size: the presence check passes
    writeFileSync(pooled, bytes);
    // The services made their tables and streams, and are stopped, as a restore wants them.
    const { target, files, vars, before, cleanup } = await filledTarget('damaged');
    try {
      const restoring = runRestore(config(vars), archive, { force: true, childEnv: { ...process.env, ...vars } }, log);
      await expect(restoring).rejects.toThrow(CorruptArchiveError);
      await expect(restoring).rejects.toThrow(/differs from the manifest's SHA-256/);
      expect(await targetState(target, files)).toEqual(before);
    } finally {
      await cleanup();
    }
  }, 180_000);

  it('restore --force checks that pg_restore can read the dump before it empties the target: without pg_restore, the target untouched', async () => {
    // pg_restore was first run after --force had dropped the schemas and deleted the streams.
    const own = path.join(dir, 'forced-no-pg-restore');
    mkdirSync(own, { recursive: true });
    const { archive } = await runBackup(config(stack.vars), own, log);
    const bin = path.join(own, 'bin-without-pg-restore');
    mkdirSync(bin, { recursive: true });
    symlinkSync(execFileSync('sh', ['-c', 'command -v pg_dump'], { encoding: 'utf8' }).trim(), path.join(bin, 'pg_dump'));
    symlinkSync(process.execPath, path.join(bin, 'node'));
    const { target, files, vars, before, cleanup } = await filledTarget('no-pg-restore');
    try {
      const env = { ...process.env, ...vars, LOG_LEVEL: 'silent', PATH: bin };
      const result = await promisify(execFile)(process.execPath, [path.join(root, 'bin/parley.mjs'), 'restore', archive, '--force'], { env }).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code: number; stderr: string }) => error,
      );
      expect(await targetState(target, files)).toEqual(before);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/pg_restore cannot read the archive's database dump.*Nothing in the target was changed/);
    } finally {
      await cleanup();
    }
  }, 180_000);

  it('refuses to restore into a namespace and database that hold data, without --force', async () => {
    await expect(runRestore(config({ ...stack.vars, ATTACHMENTS_DIR: attachmentsDir }), backup.archive, { force: false, childEnv: process.env }, log)).rejects.toThrow(TargetNotEmptyError);
  });

  it('verify restores into a scratch database and namespace, matches the manifest, and cleans up, also after a verify that was killed', async () => {
    // What a killed verify leaves: its scratch database (a copy of every message), until now for good.
    const admin = new URL(stack.env.databaseUrl);
    admin.pathname = '/postgres';
    const server = new pg.Client({ connectionString: admin.toString() });
    await server.connect();
    const scratch = `parley_verify_${stack.env.namespace.replace(/-/g, '_')}_deadbeef`;
    const scratchDatabases = async () => (await server.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE starts_with(datname, 'parley_verify_${stack.env.namespace.replace(/-/g, '_')}_')`)).rows.map((r) => r.datname);
    try {
      await server.query(`CREATE DATABASE ${scratch}`);
      const report = await runVerify(config(stack.vars), backup.archive, log);
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.lines.join('\n')).toMatch(/history: 3 chats/);
      expect(await scratchDatabases()).toEqual([]);
    } finally {
      await server.query(`DROP DATABASE IF EXISTS ${scratch}`);
      await server.end();
    }
    expect(readFileSync(`${backup.archive}.verified`, 'utf8')).toContain('verifiedAt');
  }, 120_000);

  it('a corrupted or truncated archive fails verify with a clear message and exit code 1', async () => {
    const bytes = readFileSync(backup.archive);
    const flipped = Buffer.from(bytes);
    for (let i = Math.floor(bytes.length / 2); i < Math.floor(bytes.length / 2) + 16; i++) flipped[i] = flipped[i]! ^ 0xff;
    const corrupt = path.join(dir, 'corrupt.tar.gz');
    writeFileSync(corrupt, flipped);
    const truncated = path.join(dir, 'truncated.tar.gz');
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const cfg = config(stack.vars);
    await expect(runVerify(cfg, corrupt, log)).rejects.toThrow(CorruptArchiveError);
    await expect(runVerify(cfg, truncated, log)).rejects.toThrow(/corrupt or truncated/);
    // With the archive's .sha256 beside the damaged copy, the whole-file checksum speaks first.
    const named = path.join(dir, path.basename(backup.archive).replace('.tar.gz', '-copy.tar.gz'));
    writeFileSync(named, flipped);
    copyFileSync(`${backup.archive}.sha256`, `${named}.sha256`);
    await expect(runVerify(cfg, named, log)).rejects.toThrow(/does not match .*\.sha256/);
    // The command: exit code 1 and the reason on stderr.
    const main = path.join(root, 'services/backup/dist/main.js');
    const result = await promisify(execFile)(process.execPath, [main, 'verify', truncated], { env: { ...process.env, ...stack.vars, LOG_LEVEL: 'silent' } }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/truncated\.tar\.gz is corrupt or truncated/);
  }, 60_000);

  it('a failed run reports its failure to the monitoring and leaves the last success alone', async () => {
    const metrics = path.join(dir, 'metrics');
    mkdirSync(metrics, { recursive: true });
    const textfile = path.join(metrics, 'parley_backup.prom');
    // A namespace Parley never ran in: no streams to export, so the backup fails.
    const env = { ...process.env, ...stack.vars, LOG_LEVEL: 'silent', PARLEY_NAMESPACE: 'nothinghere', BACKUP_METRICS_TEXTFILE: textfile };
    const result = await promisify(execFile)(process.execPath, [path.join(root, 'bin/parley.mjs'), 'backup', path.join(dir, 'failing')], { env }).then(
      () => ({ code: 0 }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).toBe(1);
    expect(readFileSync(path.join(metrics, 'parley_backup-failure.prom'), 'utf8')).toMatch(/^backup_last_failure_timestamp_seconds \d+/m);
    expect(readdirSync(metrics)).toEqual(['parley_backup-failure.prom']);
  });

  it('the daily job rotates even when verify fails on an error (here: no pg_restore), and exits 1', async () => {
    const daily = path.join(dir, 'daily-failing-verify');
    mkdirSync(daily, { recursive: true });
    // pg_dump but no pg_restore on the PATH: the backup is made, its verify cannot restore it.
    const bin = path.join(dir, 'bin-without-pg-restore');
    mkdirSync(bin, { recursive: true });
    symlinkSync(execFileSync('sh', ['-c', 'command -v pg_dump'], { encoding: 'utf8' }).trim(), path.join(bin, 'pg_dump'));
    symlinkSync(process.execPath, path.join(bin, 'node'));
    const env = { ...process.env, ...stack.vars, LOG_LEVEL: 'silent', PATH: bin };
    const result = await promisify(execFile)(process.execPath, [path.join(root, 'bin/parley.mjs'), 'daily', daily], { env }).then(
      ({ stdout }) => ({ code: 0, stdout, stderr: '' }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^backup .*\.tar\.gz: \d+ bytes/m);
    expect(result.stderr).toMatch(/verify .* failed: .*pg_restore/);
    expect(result.stdout).toMatch(/^rotate .*: kept \d+, deleted \d+/m);
  }, 120_000);

  it('the daily job verifies and rotates when the Pushgateway cannot be reached, and warns', async () => {
    // Port 1 refuses the connection: prom-client's push rejects. That used to end daily right
    // after the backup, so nothing was verified or rotated.
    const daily = path.join(dir, 'daily-no-pushgateway');
    mkdirSync(daily, { recursive: true });
    const env = { ...process.env, ...stack.vars, LOG_LEVEL: 'warn', PUSHGATEWAY_URL: 'http://127.0.0.1:1' };
    const result = await promisify(execFile)(process.execPath, [path.join(root, 'bin/parley.mjs'), 'daily', daily], { env }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(result.stdout).toMatch(/^verify .*: OK/m);
    expect(result.stdout).toMatch(/^rotate .*: kept 1, deleted 0/m);
    const archive = readdirSync(daily).find((f) => f.endsWith('.tar.gz'))!;
    expect(readFileSync(path.join(daily, `${archive}.verified`), 'utf8')).toContain('verifiedAt');
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/could not export the backup metrics/);
  }, 120_000);

  it('the daily job (parley daily) removes a killed run\'s leftovers, backs up, verifies, rotates and copies off-site, and pull brings the archive back', async () => {
    const daily = path.join(dir, 'daily');
    mkdirSync(daily, { recursive: true });
    // What a SIGKILLed run leaves: its staging folder and partial archive, hours old; and a
    // staging folder of a run going on right now, which must be left alone.
    const old = path.join(daily, '.parley-backup-killed');
    mkdirSync(path.join(old, 'attachments'), { recursive: true });
    writeFileSync(path.join(old, 'attachments', 'copy.bin'), Buffer.alloc(1024));
    const partial = path.join(daily, 'parley-x-20260101T000000Z.tar.gz.partial');
    writeFileSync(partial, 'half');
    const hoursAgo = new Date(Date.now() - 4 * 3600_000);
    for (const p of [old, partial]) utimesSync(p, hoursAgo, hoursAgo);
    const running = path.join(daily, '.parley-backup-running');
    mkdirSync(running);
    const parley = path.join(root, 'bin/parley.mjs');
    // Off-site too: an S3-compatible store (s3rver) reached with the real AWS SDK.
    const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: path.join(dir, 's3'), configureBuckets: [{ name: 'offsite', configs: [] }] });
    const { port } = (await s3.run()) as AddressInfo;
    const env = { ...process.env, ...stack.vars, LOG_LEVEL: 'silent', BACKUP_S3_URL: 's3://offsite/parley', BACKUP_S3_ENDPOINT: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [parley, 'daily', daily], { env });
      expect(stdout).toMatch(/^backup .*\.tar\.gz: \d+ bytes/m);
      expect(stdout).toMatch(/^verify .*: OK/m);
      expect(stdout).toMatch(/^rotate .*: kept 1, deleted 0/m);
      expect(stdout).toMatch(/^push parley-.*\.tar\.gz → s3:\/\/offsite\/parley\/: \d+ bytes, verified/m);
      expect(stdout).toMatch(/^rotate s3:\/\/offsite\/parley\/: kept 1, deleted 0/m);
      // Back from off-site, as on a machine that lost its backup volume: the same bytes, checked.
      const fetched = path.join(dir, 'fetched');
      const pulled = await promisify(execFile)(process.execPath, [parley, 'pull', 'latest', fetched], { env });
      expect(pulled.stdout).toMatch(/^pull .*: SHA-256 checked/m);
      const archive = readdirSync(daily).find((f) => f.endsWith('.tar.gz'))!;
      expect(readFileSync(path.join(fetched, archive))).toEqual(readFileSync(path.join(daily, archive)));
      // With the attachment files it names, in the pool beside it, so that it restores from there.
      const names = readFileSync(path.join(daily, `${archive}.files`), 'utf8').trim().split('\n');
      expect(names.length).toBeGreaterThan(0);
      for (const sha of names) expect(readFileSync(path.join(fetched, 'files', sha.slice(0, 2), sha)).length).toBeGreaterThan(0);
    } finally {
      await s3.close();
    }
    const left = readdirSync(daily).sort();
    expect(left.filter((f) => f.endsWith('.tar.gz'))).toHaveLength(1);
    expect(left.filter((f) => f.endsWith('.tar.gz.verified'))).toHaveLength(1);
    expect(left).not.toContain('.parley-backup-killed');
    expect(left).not.toContain(path.basename(partial));
    expect(left).toContain('.parley-backup-running');
  }, 180_000);
});
