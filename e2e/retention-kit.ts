import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { publishEvent } from '@parley/bus';
import { subjects, type ChatEvent } from '@parley/contracts';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { runCleanup } from '../services/retention/src/cli.js';
import { register, startServices, type Account, type ServiceOptions, type Services } from './stack.js';

export const DAY_MS = 86_400_000;

/**
 * The set-up of a retention test: its own namespace, files and mail folders, the retention
 * settings it names (e.g. `MESSAGE_RETENTION_DAYS: '30'`), the three services, a database client,
 * a NATS connection and two accounts.
 */
export interface RetentionStack {
  env: TestEnv;
  vars: Record<string, string>;
  services: Services;
  db: pg.Client;
  nc: NatsConnection;
  ann: Account;
  bob: Account;
  /** A pass with `--now` at `now` (and extra settings, e.g. RETENTION_ORPHAN_FILE_GRACE_SECONDS). */
  passAt(now: Date, extra?: Record<string, string>): ReturnType<typeof runCleanup>;
  /** A `SELECT count(*) AS n ...`'s n. */
  count(sql: string, params?: unknown[]): Promise<number>;
  /** Stops the services and starts them again (the same namespace and data). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRetentionStack(name: string, settings: Record<string, string>, options: ServiceOptions = {}): Promise<RetentionStack> {
  const env = await createTestEnv();
  const vars: Record<string, string> = {
    ...env.env,
    PORT: '0',
    METRICS_PORT: '0',
    PROJECTOR_ACK_WAIT_MS: '2000',
    ATTACHMENTS_DIR: mkdtempSync(path.join(tmpdir(), `parley-${name}-`)),
    MAIL_DIR: mkdtempSync(path.join(tmpdir(), `parley-${name}-mail-`)),
    ...settings,
  };
  const rs: RetentionStack = {
    env,
    vars,
    services: await startServices(vars, options),
    db: new pg.Client({ connectionString: env.databaseUrl }),
    nc: await env.connectNats(),
    ann: undefined as unknown as Account,
    bob: undefined as unknown as Account,
    passAt: (now, extra = {}) => runCleanup(['--now', now.toISOString()], { ...vars, ...extra }, () => {}),
    count: async (sql, params = []) => Number((await rs.db.query(sql, params)).rows[0].n),
    async restart() {
      await rs.services.stop();
      rs.services = await startServices(vars, options);
    },
    async stop() {
      await rs.nc.close().catch(() => {});
      await rs.db.end().catch(() => {});
      await rs.services.stop().catch(() => {});
      await env.cleanup();
    },
  };
  await rs.db.connect();
  [rs.ann, rs.bob] = [await register(rs.services), await register(rs.services)];
  return rs;
}

/**
 * A cutoff between what was stored before and what is stored after: JetStream's and the events'
 * times are milliseconds apart at least.
 */
export async function markCutoff(): Promise<Date> {
  await new Promise((r) => setTimeout(r, 50));
  const cutoff = new Date();
  await new Promise((r) => setTimeout(r, 50));
  return cutoff;
}

/**
 * Appends `event` to a chat as a writer that lost a race appends it: after the chat's head as the
 * stream has it now (expected last subject sequence), whatever the decider would say today.
 */
export async function appendAfterHead(nc: NatsConnection, namespace: string, event: ChatEvent, msgId: string): Promise<void> {
  const subject = subjects.chat(namespace, event.chatId);
  const head = await (await jetstreamManager(nc)).streams.getMessage(`${namespace}_chats`, { last_by_subj: subject });
  await publishEvent(jetstream(nc), subject, event, { msgId, expectLastSubjectSequence: head?.seq ?? 0 });
}
