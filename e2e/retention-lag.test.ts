import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { runCleanup } from '../services/retention/src/cli.js';
import { startGatewayService } from '../services/gateway/src/service.js';
import { startMessagesService } from '../services/messages/src/service.js';
import { startUsersService } from '../services/users/src/service.js';
import { http, register, storedMessages, type Account } from './stack.js';

const DAY_MS = 86_400_000;

/**
 * The pass compacts the streams while the projections apply its deletion events (issue 18). A
 * projector still behind the purge point would then never see what the purge removes: here a
 * chat's rename, which only the stream holds while the chats projector is held. The pass must
 * wait for it, and fail rather than purge when it does not come.
 */
describe('retention: no purge under a projector that has not passed the purge point', () => {
  let env: TestEnv;
  let vars: Record<string, string>;
  let db: pg.Client;
  let nc: NatsConnection;
  const stops: (() => Promise<void>)[] = [];
  let baseUrl = '';
  /** While set, every batch of the messages service's projectors waits for it. */
  let held: Promise<void> | null = null;
  let release = () => {};
  let a: Account;
  let group: string;
  const now = () => new Date(Date.now() + 60 * DAY_MS).toISOString();

  beforeAll(async () => {
    env = await createTestEnv();
    vars = {
      ...env.env,
      PORT: '0',
      METRICS_PORT: '0',
      ATTACHMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'parley-retention-lag-')),
      MAIL_DIR: mkdtempSync(path.join(tmpdir(), 'parley-retention-lag-mail-')),
      MESSAGE_RETENTION_DAYS: '30',
      AUDIT_LOG_RETENTION_DAYS: '30',
      RESET_TOKEN_RETENTION_DAYS: '30',
      READ_RECEIPT_RETENTION_DAYS: '30',
      RETENTION_PROJECTION_TIMEOUT_SECONDS: '3',
    };
    const users = await startUsersService(vars);
    const messages = await startMessagesService(vars, { projectorHooks: { received: () => held ?? undefined } });
    const gateway = await startGatewayService(vars);
    stops.push(() => gateway.stop(), () => messages.stop(), () => users.stop());
    baseUrl = `http://127.0.0.1:${gateway.port}`;
    db = new pg.Client({ connectionString: env.databaseUrl });
    await db.connect();
    nc = await env.connectNats();
  });

  afterAll(async () => {
    release();
    await nc?.close();
    await db?.end();
    for (const stop of stops) await stop().catch(() => {});
    await env?.cleanup();
  });

  const title = async () => (await db.query<{ title: string }>('SELECT title FROM messages.chats WHERE id = $1', [group])).rows[0]?.title;
  const chatEvents = async () => (await storedMessages(nc, `${env.namespace}_chats`)).filter((m) => m.subject.endsWith(`.chat.${group}`));

  it('fails instead of purging while the chats projector is behind, and purges once it has passed', async () => {
    const stack = { baseUrl };
    a = await register(stack);
    const b = await register(stack);
    group = (await http(stack, 'POST', '/api/v1/chats', { token: a.accessToken, body: { type: 'group', title: 'before', memberIds: [b.id] } })).body.id;
    expect((await http(stack, 'POST', `/api/v1/chats/${group}/messages`, { token: a.accessToken, body: { clientMsgId: 'lag-1', body: 'hello' } })).status).toBe(201);
    await eventually(async () => (await title()) === 'before' || undefined);

    // Hold the projectors, then rename: the event is stored, the projection does not have it.
    held = new Promise<void>((resolve) => (release = resolve));
    const renamed = http(stack, 'PATCH', `/api/v1/chats/${group}`, { token: a.accessToken, body: { title: 'after' } });
    await eventually(async () => (await chatEvents()).some((m) => m.text.includes('"ChatRenamed"')) || undefined);

    const first = await runCleanup(['--now', now()], vars, () => {});
    expect(first.exitCode).not.toBe(0);
    // Nothing of the chat was purged: the rename is still there for the projector to apply.
    const kept = await chatEvents();
    expect(kept.filter((m) => m.text.includes('"ChatCreated"') || m.text.includes('"ChatRenamed"'))).toHaveLength(2);
    expect(await title()).toBe('before');

    // Let go: the projection applies the rename (and the expiry), and the next pass purges.
    held = null;
    release();
    expect((await renamed).status).toBe(200);
    await eventually(async () => (await title()) === 'after' || undefined);
    const second = await runCleanup(['--now', now()], vars, () => {});
    expect(second.exitCode).toBe(0);
    expect((await chatEvents()).filter((m) => m.text.includes('"ChatCreated"') || m.text.includes('"ChatRenamed"'))).toEqual([]);
    expect(await title()).toBe('after');
  });
});
