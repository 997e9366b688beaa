import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { publishEvent } from '@parley/bus';
import { buildMeta, newId, type ChatEvent } from '@parley/contracts';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { runCleanup } from '../services/retention/src/cli.js';
import { rebuildMessages } from '../services/messages/src/rebuild.js';
import { http, register, startServices, storedMessages, type Account, type Services } from './stack.js';

const DAY_MS = 86_400_000;

/**
 * A deleted message's tombstone (its row: seq, sender, time) expires with the message. Deleting a
 * message removes its MessageSent from the stream, so the pass's scan never saw that seq: the
 * tombstone of the newest old message outlived the retention period (history showed it, the chat
 * list showed it as the last message), and a chat whose only old message was deleted got no
 * MessagesExpired at all. The pass now asks the messages service for expired tombstones, and the
 * expiry takes their MessageDeleted events out of the stream as it does a message's later edits.
 */
describe('retention: tombstones of deleted messages expire with the messages', () => {
  let env: TestEnv;
  let vars: Record<string, string>;
  let stack: Services;
  let db: pg.Client;
  let nc: NatsConnection;
  let ann: Account;
  let bob: Account;
  /** The group of the first test, every event of it purged by that test's pass. */
  let group = '';

  beforeAll(async () => {
    env = await createTestEnv();
    vars = { ...env.env, PORT: '0', METRICS_PORT: '0', PROJECTOR_ACK_WAIT_MS: '2000', ATTACHMENTS_DIR: mkdtempSync(path.join(tmpdir(), 'parley-retention-tombstones-')), MAIL_DIR: mkdtempSync(path.join(tmpdir(), 'parley-tombstones-mail-')), MESSAGE_RETENTION_DAYS: '30' };
    stack = await startServices(vars);
    db = new pg.Client({ connectionString: env.databaseUrl });
    await db.connect();
    nc = await env.connectNats();
    [ann, bob] = [await register(stack), await register(stack)];
  });
  afterAll(async () => {
    await nc?.close();
    await db?.end();
    await stack?.stop().catch(() => {});
    await env?.cleanup();
  });

  it('removes the tombstone of the newest old message, and expires a chat whose only old message was deleted', async () => {
    const direct = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id as string;
    group = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'group', title: 'one message', memberIds: [bob.id] } })).body.id as string;
    const send = async (chatId: string, clientMsgId: string) => (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId, body: clientMsgId } })).body as { id: string; seq: number };
    const m1 = await send(direct, 'm1');
    const m2 = await send(direct, 'm2');
    const only = await send(group, 'only');
    await new Promise((r) => setTimeout(r, 50));
    const cutoff = new Date();
    await new Promise((r) => setTimeout(r, 50));
    // Deleted after the cutoff (its MessageDeleted is fresh), the messages themselves older.
    for (const id of [m2.id, only.id]) expect((await http(stack, 'DELETE', `/api/v1/messages/${id}`, { token: ann.accessToken })).status).toBe(204);
    await eventually(async () => {
      const stored = await storedMessages(nc, `${env.namespace}_chats`);
      return stored.some((m) => m.text.includes('"MessageSent"') && (m.text.includes(m2.id) || m.text.includes(only.id))) ? undefined : true;
    }, 10_000, 'the deleted messages\' MessageSent gone from the stream');
    const rowsOf = async (ids: string[]) => Number((await db.query('SELECT count(*) AS n FROM messages.messages WHERE id = ANY($1::uuid[])', [ids])).rows[0].n);
    expect(await rowsOf([m2.id, only.id])).toBe(2); // the tombstones

    const cleanup = () => runCleanup(['--now', new Date(cutoff.getTime() + 30 * DAY_MS).toISOString()], { ...vars, RETENTION_ORPHAN_FILE_GRACE_SECONDS: '0' }, () => {});
    const pass = await cleanup();
    expect(pass.exitCode).toBe(0);
    expect(pass.report?.rows.messages).toBe(3);
    expect(pass.report?.chatsTouched).toBe(2);
    expect(await rowsOf([m1.id, m2.id, only.id])).toBe(0);

    // The API: no "deleted message" in history, none as either chat's last message.
    const expectGone = async () => {
      for (const chatId of [direct, group]) expect((await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: bob.accessToken })).body.items).toEqual([]);
      // The cached lists go after the projection's commit.
      const lasts = await eventually(async () => {
        const items = (await http(stack, 'GET', '/api/v1/chats', { token: bob.accessToken })).body.items as { id: string; lastMessage: unknown }[];
        return items.every((c) => c.lastMessage === null) ? items : undefined;
      }, 5_000, 'no last message in bob\'s list');
      expect(lasts.map((c) => c.id).sort()).toEqual([direct, group].sort());
    };
    await expectGone();
    // Each chat got its expiry, up to the tombstone's seq; and the MessageDeleted events, newer
    // than the cutoff but naming the expired messages' sender, time and clientMsgId, left the
    // stream with them (the pass waited for the reactors).
    const stored = await storedMessages(nc, `${env.namespace}_chats`);
    expect(stored.filter((m) => [m1.id, m2.id, only.id].some((id) => m.text.includes(id)))).toEqual([]);
    const expiries = stored.filter((m) => m.text.includes('"MessagesExpired"')).map((m) => JSON.parse(m.text) as { chatId: string; data: { upToSeq: number } });
    expect(expiries.map((e) => [e.chatId, e.data.upToSeq]).sort()).toEqual([[direct, m2.seq], [group, only.seq]].sort());

    // A second pass finds nothing more, and a rebuild from the streams brings nothing back.
    expect((await cleanup()).report?.rows.messages).toBe(0);
    await stack.stop();
    await rebuildMessages(vars);
    stack = await startServices(vars);
    expect(await rowsOf([m1.id, m2.id, only.id])).toBe(0);
    await expectGone();
  });

  it('expires a tombstone in a chat of which an earlier pass purged every event (the scan sees nothing of it)', async () => {
    const sent = (await http(stack, 'POST', `/api/v1/chats/${group}/messages`, { token: ann.accessToken, body: { clientMsgId: 'later', body: 'later' } })).body as { id: string; seq: number };
    await new Promise((r) => setTimeout(r, 50));
    const cutoff = new Date();
    await new Promise((r) => setTimeout(r, 50));
    expect((await http(stack, 'DELETE', `/api/v1/messages/${sent.id}`, { token: ann.accessToken })).status).toBe(204);
    await eventually(async () => ((await storedMessages(nc, `${env.namespace}_chats`)).some((m) => m.text.includes('"MessageSent"') && m.text.includes(sent.id)) ? undefined : true), 10_000, 'the MessageSent gone');
    const pass = await runCleanup(['--now', new Date(cutoff.getTime() + 30 * DAY_MS).toISOString()], { ...vars, RETENTION_ORPHAN_FILE_GRACE_SECONDS: '0' }, () => {});
    expect(pass.exitCode).toBe(0);
    expect(pass.report?.rows.messages).toBe(1);
    expect(Number((await db.query('SELECT count(*) AS n FROM messages.messages WHERE chat_id = $1', [group])).rows[0].n)).toBe(0);
    expect((await storedMessages(nc, `${env.namespace}_chats`)).filter((m) => m.text.includes(sent.id))).toEqual([]);
  });

  it('never expires past a fresh message: an older message given a higher seq (a retried send keeps its first time) is left', async () => {
    const cal = await register(stack);
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: cal.id } })).body.id as string;
    await new Promise((r) => setTimeout(r, 50));
    const cutoff = new Date();
    await new Promise((r) => setTimeout(r, 50));
    const fresh = (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId: 'fresh', body: 'fresh' } })).body as { id: string; seq: number };
    // A send built before the cutoff that lost its first append to the fresh one and was stored
    // after it, its time kept, as ChatWriter stores a retried send.
    const subject = `${env.namespace}.chat.${chatId}`;
    const jsm = await jetstreamManager(nc);
    const head = (await jsm.streams.getMessage(`${env.namespace}_chats`, { last_by_subj: subject }))!;
    const older = newId();
    const retried = {
      type: 'MessageSent',
      version: 1,
      chatId,
      seq: fresh.seq + 1,
      data: { messageId: older, senderId: ann.id, clientMsgId: 'older', body: 'older', replyTo: null, attachmentIds: [] },
      meta: buildMeta({ eventId: newId(), occurredAt: new Date(cutoff.getTime() - 1_000), actorId: ann.id, correlationId: newId() }),
    } as ChatEvent;
    await publishEvent(jetstream(nc), subject, retried, { msgId: `older:${chatId}`, expectLastSubjectSequence: head.seq });
    await eventually(async () => (await http(stack, 'DELETE', `/api/v1/messages/${older}`, { token: ann.accessToken })).status === 204 || undefined, 10_000, 'the older message deleted');
    const pass = await runCleanup(['--now', new Date(cutoff.getTime() + 30 * DAY_MS).toISOString()], { ...vars, RETENTION_ORPHAN_FILE_GRACE_SECONDS: '0' }, () => {});
    expect(pass.exitCode).toBe(0);
    // The fresh message stays (an expiry up to the tombstone's seq took it); the tombstone waits
    // for the fresh message's own expiry.
    expect((await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: cal.accessToken })).body.items.map((m: { id: string }) => m.id)).toContain(fresh.id);
    expect(Number((await db.query('SELECT count(*) AS n FROM messages.messages WHERE id = $1', [fresh.id])).rows[0].n)).toBe(1);
  });
});
