import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoad } from './harness/client.js';
import { Scenario } from './harness/scenario.js';
import { sleep } from './harness/servers.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..', '..');
/**
 * Runs a job (or a script) to its end. Killed after `timeoutMs` (all of them inside the test's
 * 240 s), so that a job that hangs fails with the end of its log rather than a bare test timeout.
 * That is how the hang two CI runs saw was found: the rebuild below retried the messages of chats
 * whose creation the backup had lost to a retention pass purging beside it (the backup and the
 * pass now take one lock: acquireJobLock in packages/bus).
 */
const job = async (service: string, args: string[], env: Record<string, string>, timeoutMs = 180_000) => script(path.join(root, 'services', service, 'dist', 'main.js'), args, env, timeoutMs);
const script = async (file: string, args: string[], env: Record<string, string>, timeoutMs: number) => {
  try {
    return await run(process.execPath, [file, ...args], { env: { ...process.env, ...env }, maxBuffer: 64 << 20, timeout: timeoutMs, killSignal: 'SIGKILL' });
  } catch (error) {
    const { stderr, stdout, killed } = error as { stderr?: string; stdout?: string; killed?: boolean };
    throw new Error(`${path.relative(root, file)} ${args.join(' ')} ${killed ? `killed after ${timeoutMs / 1000} s` : 'failed'}:\n${(stderr ?? '').slice(-20_000)}\n${(stdout ?? '').slice(-5_000)}`, { cause: error });
  }
};

/** The projection rows that must be a pure function of the streams, in a stable order. */
async function projection(databaseUrl: string): Promise<Record<string, unknown[]>> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const q = async (sql: string) => (await db.query(sql)).rows;
    return {
      messages: await q('SELECT id, chat_id, seq, sender_id, client_msg_id, body, reply_to, created_at, edited_at, deleted_at FROM messages.messages ORDER BY chat_id, seq'),
      chats: await q('SELECT id, type, title, last_seq FROM messages.chats ORDER BY id'),
      members: await q('SELECT chat_id, user_id, role FROM messages.chat_members ORDER BY chat_id, user_id'),
      users: await q('SELECT id, username, email, display_name, bio FROM users.users ORDER BY id'),
    };
  } finally {
    await db.end();
  }
}

/**
 * Scenario 7 (promises 5 and 7, docs/architecture.md#promises): a retention pass and a backup run while clients keep
 * sending. The pass removes exactly the messages older than its cutoff and nothing acknowledged
 * after it; the backup restores into another namespace, and what the restore's replay built equals
 * a full rebuild of that restore from its streams.
 */
describe('retention and backup under load; restore equals a rebuild', () => {
  let scenario: Scenario;
  let backupDir: string;

  beforeAll(async () => {
    scenario = await Scenario.start({ gateways: 1, people: 4, env: { MESSAGE_RETENTION_DAYS: '1' } });
    backupDir = path.join(scenario.servers.dir, 'backups');
    mkdirSync(backupDir);
  });
  afterAll(async () => {
    await scenario?.stop();
  });

  it('expires only what is past the cutoff and backs up consistently while the load goes on', async () => {
    // Phase 1: messages that the pass will treat as older than its cutoff.
    await runLoad(scenario.clients, 60, 4_000);
    while (scenario.clients.some((c) => c.pending > 0)) await sleep(50);
    const expired = scenario.history.expireAcked();
    await sleep(1_100);
    const cutoff = new Date();
    await sleep(1_100);

    // Phase 2: the load goes on while retention (as if a day later) and a backup run.
    const signal = { stop: false };
    const load = runLoad(scenario.clients, 60, 120_000, signal);
    const now = new Date(cutoff.getTime() + 86_400_000).toISOString();
    const [retention, backup] = await Promise.all([job('retention', ['--now', now, '--json'], scenario.env), job('backup', ['backup', backupDir], scenario.env)]);
    await sleep(2_000);
    signal.stop = true;
    const sent = await load;
    const report = JSON.parse(retention.stdout.slice(retention.stdout.indexOf('{')));

    const verdict = await scenario.settleAndCheck();
    console.log('jobs under load:', { sent, expired, retention: report.deleted ?? report, ...verdict.stats, backup: backup.stdout.trim().split('\n').at(-1) });
    expect(verdict.violations, scenario.logs()).toEqual([]);
    expect(expired).toBeGreaterThan(0);
    expect(verdict.stats.stored).toBe(verdict.stats.acked - expired);
  });

  it('restores the backup elsewhere, and the restore replayed equals a full rebuild', async () => {
    const archive = readdirSync(backupDir).find((f) => f.endsWith('.tar.gz'))!;
    expect(archive).toBeDefined();
    const target = {
      ...scenario.env,
      // Another installation on the same NATS server: its own bus users, its backup job allowed to read the source's ledger.
      ...(await scenario.servers.nats.addNamespace(`${scenario.env.PARLEY_NAMESPACE}r`)),
      DATABASE_URL: scenario.servers.postgres.url('restored'), ATTACHMENTS_DIR: path.join(scenario.servers.dir, 'restored-files') };
    await job('backup', ['restore', path.join(backupDir, archive)], { ...target, LOG_LEVEL: 'debug' }, 100_000);
    const restored = await projection(target.DATABASE_URL);
    expect(restored.messages!.length).toBeGreaterThan(0);

    await script(path.join(root, 'scripts', 'rebuild.mjs'), ['messages'], { ...target, LOG_LEVEL: 'debug' }, 60_000);
    await script(path.join(root, 'scripts', 'rebuild.mjs'), ['users'], { ...target, LOG_LEVEL: 'debug' }, 60_000);
    const rebuilt = await projection(target.DATABASE_URL);
    console.log('restore vs rebuild:', Object.fromEntries(Object.entries(restored).map(([k, v]) => [k, v.length])));
    expect(rebuilt).toEqual(restored);
  });
});
