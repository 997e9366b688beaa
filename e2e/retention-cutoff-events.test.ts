import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { runCleanup } from '../services/retention/src/cli.js';
import { http, register, startServices, storedMessages, type Account, type Services } from './stack.js';

const DAY_MS = 86_400_000;

/**
 * The pass published a class's cutoff event (here ReadPositionsExpired) only when the preview
 * counted rows. A projector behind the expired events has no rows for them yet: the pass
 * published nothing, waited for the projector to pass the purge point (which inserts the rows),
 * purged, and the rows outlived the retention period until the next pass. The cutoff event is now
 * published whenever the scan found expired events; it follows them in the stream.
 */
describe('retention: a cutoff event for expired events a lagging projector has not applied yet', () => {
  let env: TestEnv;
  let vars: Record<string, string>;
  let stack: Services;
  let db: pg.Client;
  let nc: NatsConnection;
  /** While set, every batch of the messages service's projectors waits for it. */
  let held: Promise<void> | null = null;
  let release = () => {};
  let ann: Account;
  let bob: Account;

  beforeAll(async () => {
    env = await createTestEnv();
    vars = {
      ...env.env,
      PORT: '0',
      METRICS_PORT: '0',
      PROJECTOR_ACK_WAIT_MS: '2000',
      ATTACHMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'parley-retention-cutoff-')),
      MAIL_DIR: mkdtempSync(path.join(tmpdir(), 'parley-cutoff-mail-')),
      READ_RECEIPT_RETENTION_DAYS: '30',
      AUDIT_LOG_RETENTION_DAYS: '30',
    };
    stack = await startServices(vars, { messages: { projectorHooks: { received: () => held ?? undefined } } });
    db = new pg.Client({ connectionString: env.databaseUrl });
    await db.connect();
    nc = await env.connectNats();
    [ann, bob] = [await register(stack), await register(stack)];
  });
  afterAll(async () => {
    release();
    await nc?.close();
    await db?.end();
    await stack?.stop().catch(() => {});
    await env?.cleanup();
  });

  it('deletes the read position the projector inserts after the preview', async () => {
    const count = async (sql: string) => Number((await db.query(sql)).rows[0].n);
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id;
    const sent = (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId: 'one', body: 'one' } })).body as { id: string };
    await eventually(async () => (await count('SELECT count(*) AS n FROM messages.messages')) === 1 || undefined);
    // The audit entries (registrations) are projected by users, which is not held: the pass's
    // AuditEntriesExpired is the sign that it has passed its preview and published its events.
    await eventually(async () => (await count('SELECT count(*) AS n FROM users.audit_log')) >= 2 || undefined);

    // Hold the messages service's projectors, then read: the event is stored, the row is not.
    held = new Promise<void>((resolve) => (release = resolve));
    expect((await http(stack, 'POST', `/api/v1/chats/${chatId}/read`, { token: bob.accessToken, body: { messageId: sent.id } })).status).toBe(204);
    await eventually(async () => (await storedMessages(nc, `${env.namespace}_receipts`)).some((m) => m.text.includes('"ReadPositionUpdated"')) || undefined);
    await new Promise((r) => setTimeout(r, 50));
    const cutoff = new Date();

    const pass = runCleanup(['--now', new Date(cutoff.getTime() + 30 * DAY_MS).toISOString()], vars, () => {});
    await eventually(async () => (await storedMessages(nc, `${env.namespace}_audit`)).some((m) => m.text.includes('"AuditEntriesExpired"')) || undefined, 10_000, 'the pass\'s audit cutoff event');
    expect(await count('SELECT count(*) AS n FROM messages.read_positions')).toBe(0); // still held
    held = null;
    release();
    const { exitCode, report } = await pass;
    expect(exitCode).toBe(0);
    expect(report?.rows.readReceipts).toBe(0); // the preview saw no row
    // The pass waited for the receipts projector to apply its cutoff event, after the position.
    expect(await count('SELECT count(*) AS n FROM messages.read_positions')).toBe(0);
  });
});
