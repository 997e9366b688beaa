import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { runCleanup } from '../services/retention/src/cli.js';
import { rebuildMessages } from '../services/messages/src/rebuild.js';
import { rebuildUsers } from '../services/users/src/rebuild.js';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { cachedTexts, http, register, startServices, storedMessages, TestSocket, type Account, type Services } from './stack.js';

const DAY_MS = 86_400_000;
/** Words that appear only in the old data: none may survive anywhere after the pass. */
const OLD = 'zebraquokka';
const FRESH = 'pelicanotter';

describe('retention: npm run cleanup deletes expired data everywhere, and only that', () => {
  let env: TestEnv;
  let vars: Record<string, string>;
  let stack: Services;
  let db: pg.Client;
  let nc: NatsConnection;
  let redis: Redis;
  let files: string;
  let a: Account;
  let b: Account;
  let direct: string;
  let group: string;
  /** A group created before the cutoff in which nothing else happened: the purge empties its subject. */
  let quiet: string;
  let cutoff: Date;
  const old: { messageIds: string[]; attachmentId: string; pollId: string } = { messageIds: [], attachmentId: '', pollId: '' };
  let freshMessageId: string;
  /** Uploaded before the cutoff, sent after it: its upload record is carried past the purge. */
  let keptAttachmentId: string;
  /** Just after the fresh message was stored, and just before the first pass (which carried its upload record) ran. */
  let freshSentBy: Date;
  let firstPassFrom: Date;
  // Every class gets the same period, so one --now puts one cutoff between the old and the fresh data.
  const days = '30';
  const now = () => new Date(cutoff.getTime() + 30 * DAY_MS).toISOString();
  const cleanup = (...args: string[]) => runCleanup([...args, '--now', now()], { ...vars, RETENTION_ORPHAN_FILE_GRACE_SECONDS: '0' }, () => {});
  const rows = async (sql: string, params: unknown[] = []) => Number((await db.query(sql, params)).rows[0].n);

  beforeAll(async () => {
    files = mkdtempSync(path.join(tmpdir(), 'parley-retention-'));
    env = await createTestEnv();
    vars = {
      ...env.env,
      PORT: '0',
      METRICS_PORT: '0',
      PROJECTOR_ACK_WAIT_MS: '2000',
      ATTACHMENTS_DIR: files,
      MAIL_DIR: mkdtempSync(path.join(tmpdir(), 'parley-retention-mail-')),
      MESSAGE_RETENTION_DAYS: days,
      AUDIT_LOG_RETENTION_DAYS: days,
      RESET_TOKEN_RETENTION_DAYS: days,
      READ_RECEIPT_RETENTION_DAYS: days,
    };
    stack = await startServices(vars);
    db = new pg.Client({ connectionString: env.databaseUrl });
    await db.connect();
    nc = await env.connectNats();
    redis = new Redis(env.redisUrl);
    a = await register(stack);
    b = await register(stack);
    direct = (await http(stack, 'POST', '/api/v1/chats', { token: a.accessToken, body: { type: 'direct', userId: b.id } })).body.id;
    group = (await http(stack, 'POST', '/api/v1/chats', { token: a.accessToken, body: { type: 'group', title: 'old only', memberIds: [b.id] } })).body.id;
    quiet = (await http(stack, 'POST', '/api/v1/chats', { token: a.accessToken, body: { type: 'group', title: 'quiet', memberIds: [b.id] } })).body.id;
    expect((await http(stack, 'PATCH', `/api/v1/chats/${quiet}`, { token: a.accessToken, body: { title: 'quiet, renamed' } })).status).toBe(200);

    // The old data: messages with a reaction, a poll with a vote, an attachment, a read receipt,
    // a password-reset token, audit entries (registration), and cached chat lists showing it.
    const form = new FormData();
    form.append('file', new Blob([`${OLD} file body`], { type: 'text/plain' }), `${OLD}.txt`);
    old.attachmentId = ((await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${a.accessToken}` }, body: form })).json()) as { id: string }).id;
    const keptForm = new FormData();
    keptForm.append('file', new Blob([`${FRESH} file body`], { type: 'text/plain' }), `${FRESH}.txt`);
    keptAttachmentId = ((await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${a.accessToken}` }, body: keptForm })).json()) as { id: string }).id;
    let sent = 0;
    const send = async (chatId: string, body: string, extra: object = {}) =>
      (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: a.accessToken, body: { clientMsgId: `c-${++sent}`, body, ...extra } })).body;
    old.messageIds.push((await send(direct, `first ${OLD} message`, { attachmentIds: [old.attachmentId] })).id);
    old.messageIds.push((await send(direct, `second ${OLD} message`)).id);
    old.messageIds.push((await send(group, `group ${OLD} message`)).id);
    expect((await http(stack, 'POST', `/api/v1/messages/${old.messageIds[1]}/reactions`, { token: b.accessToken, body: { emoji: '👍' } })).status).toBe(201);
    const poll = (await http(stack, 'POST', `/api/v1/chats/${group}/polls`, { token: a.accessToken, body: { question: `${OLD} poll?`, options: ['yes', 'no'] } })).body;
    old.messageIds.push(poll.id);
    old.pollId = poll.poll.id;
    expect((await http(stack, 'POST', `/api/v1/polls/${old.pollId}/votes`, { token: b.accessToken, body: { optionIds: [poll.poll.options[0].id] } })).status).toBe(200);
    expect((await http(stack, 'POST', `/api/v1/chats/${group}/read`, { token: b.accessToken, body: { messageId: old.messageIds[2] } })).status).toBe(204);
    expect((await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: `${a.username}@example.test` } })).status).toBe(202);
    await eventually(async () => ((await rows('SELECT count(*) AS n FROM users.password_resets')) === 1 && (await rows('SELECT count(*) AS n FROM messages.read_positions')) === 1) || undefined);
    expect((await http(stack, 'GET', '/api/v1/chats', { token: b.accessToken })).body.items.length).toBe(3); // cached now

    // The cutoff, then the fresh data (JetStream timestamps are milliseconds apart at least).
    await new Promise((r) => setTimeout(r, 50));
    cutoff = new Date();
    await new Promise((r) => setTimeout(r, 50));
    freshMessageId = (await send(direct, `fresh ${FRESH} message`, { attachmentIds: [keptAttachmentId] })).id;
    freshSentBy = new Date();
    expect((await http(stack, 'POST', `/api/v1/messages/${freshMessageId}/reactions`, { token: b.accessToken, body: { emoji: '🎉' } })).status).toBe(201);
    // After the cutoff, on old messages: an edit, a reaction and a vote. They expire with their
    // messages (issue 18: what refers to a message must not outlive it), though newer themselves.
    expect((await http(stack, 'PATCH', `/api/v1/messages/${old.messageIds[0]}`, { token: a.accessToken, body: { body: `edited ${OLD} text` } })).status).toBe(200);
    expect((await http(stack, 'POST', `/api/v1/messages/${old.messageIds[2]}/reactions`, { token: b.accessToken, body: { emoji: '👀' } })).status).toBe(201);
    expect((await http(stack, 'POST', `/api/v1/polls/${old.pollId}/votes`, { token: a.accessToken, body: { optionIds: [poll.poll.options[1].id] } })).status).toBe(200);
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.reactions')) === 3 || undefined);
  });

  afterAll(async () => {
    await redis?.quit();
    await nc?.close();
    await db?.end();
    await stack?.stop().catch(() => {});
    await env?.cleanup();
  });

  it('a dry run reports what would go, per data type, and changes nothing', async () => {
    // Audit entries are projected asynchronously: let the projection catch up with the stream first.
    const jsm = await jetstreamManager(nc);
    await eventually(async () => (await rows('SELECT count(*) AS n FROM users.audit_log')) === (await jsm.streams.info(`${env.namespace}_audit`)).state.messages || undefined);
    const before = {
      messages: await rows('SELECT count(*) AS n FROM messages.messages'),
      audit: await rows('SELECT count(*) AS n FROM users.audit_log'),
      chats: (await storedMessages(nc, `${env.namespace}_chats`)).length,
    };
    const { exitCode, report } = await cleanup('--dry-run');
    expect(exitCode).toBe(0);
    // The reaction and the vote made on old messages after the cutoff go with them: two of each.
    expect(report?.rows).toMatchObject({ messages: 4, searchEntries: 4, reactions: 2, polls: 1, pollVotes: 2, attachments: 1, readReceipts: 1, resetTokens: 1 });
    expect(report?.rows.auditEntries).toBeGreaterThanOrEqual(3); // two registrations and the reset request
    expect(report?.streamEvents.chats).toBeGreaterThanOrEqual(7);
    expect(await rows('SELECT count(*) AS n FROM messages.messages')).toBe(before.messages);
    expect(await rows('SELECT count(*) AS n FROM users.audit_log')).toBe(before.audit);
    expect((await storedMessages(nc, `${env.namespace}_chats`)).length).toBe(before.chats);
    expect(existsSync(path.join(files, old.attachmentId.slice(-2), old.attachmentId))).toBe(true);
  });

  it('deletes the expired rows, search entries, cache entries, files and stream events, and keeps the fresh ones', async () => {
    firstPassFrom = new Date();
    const { exitCode, report } = await cleanup();
    expect(exitCode).toBe(0);
    expect(report?.rows.messages).toBe(4);

    // Postgres, with everything hanging off the messages.
    expect(await rows('SELECT count(*) AS n FROM messages.messages WHERE id = ANY($1::uuid[])', [old.messageIds])).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM messages.messages WHERE id = $1', [freshMessageId])).toBe(1);
    expect(await rows('SELECT count(*) AS n FROM messages.reactions')).toBe(1);
    expect(await rows('SELECT count(*) AS n FROM messages.dependent_events WHERE message_id = ANY($1::uuid[])', [old.messageIds])).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM messages.polls')).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM messages.poll_votes')).toBe(0);
    // The fresh message's file stays, though uploaded before the cutoff: its upload record was
    // carried to the head of the stream (the retention principal may publish it there).
    expect((await db.query('SELECT id FROM messages.attachments')).rows.map((r) => r.id)).toEqual([keptAttachmentId]);
    expect(await rows('SELECT count(*) AS n FROM messages.read_positions')).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM users.password_resets')).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM users.audit_log WHERE occurred_at < $1', [cutoff])).toBe(0);
    // The chats, their members and the accounts are not messages: they stay.
    expect(await rows('SELECT count(*) AS n FROM messages.chats')).toBe(3);
    expect(await rows('SELECT count(*) AS n FROM users.users')).toBe(2);

    // The API: history, search, the chat list (which Redis had cached with the old last message).
    const history = (await http(stack, 'GET', `/api/v1/chats/${direct}/messages`, { token: b.accessToken })).body.items;
    expect(history.map((m: { id: string }) => m.id)).toEqual([freshMessageId]);
    expect((await http(stack, 'GET', `/api/v1/chats/${group}/messages`, { token: b.accessToken })).body.items).toEqual([]);
    expect((await http(stack, 'GET', `/api/v1/search?q=${OLD}`, { token: b.accessToken })).body.items).toEqual([]);
    expect((await http(stack, 'GET', `/api/v1/search?q=${FRESH}`, { token: b.accessToken })).body.items).toHaveLength(1);
    const list = (await http(stack, 'GET', '/api/v1/chats', { token: b.accessToken })).body.items;
    expect(list.find((c: { id: string }) => c.id === group).lastMessage).toBeNull();
    expect((await http(stack, 'GET', `/api/v1/attachments/${old.attachmentId}`, { token: a.accessToken })).status).toBe(404);

    // Redis: no cached value mentions the old data.
    const values = [...(await cachedTexts(redis, env.namespace)).values()];
    expect(values.filter((v) => v.includes(OLD))).toEqual([]);

    // Disk.
    expect(existsSync(path.join(files, old.attachmentId.slice(-2), old.attachmentId))).toBe(false);
    expect(existsSync(path.join(files, keptAttachmentId.slice(-2), keptAttachmentId))).toBe(true);
    const kept = await fetch(`${stack.baseUrl}/api/v1/attachments/${keptAttachmentId}`, { headers: { authorization: `Bearer ${b.accessToken}` } });
    expect([kept.status, await kept.text()]).toEqual([200, `${FRESH} file body`]);

    // The streams: nothing old is left to replay, but every chat's structure and head is. What
    // referred to the old messages after the cutoff goes through the stream-content reactor.
    const chats = await eventually(async () => {
      const stored = await storedMessages(nc, `${env.namespace}_chats`);
      return stored.some((m) => m.text.includes(OLD) || old.messageIds.some((id) => m.text.includes(id))) ? undefined : stored;
    }, 10_000, 'no event of or about the old messages in the chats stream');
    expect(chats.filter((m) => m.text.includes(OLD))).toEqual([]);
    // Every chat event before the cutoff went in one purge (issue 18), structure too: each chat's
    // structure lives on in its snapshot, folded up to the last purged seq.
    const chatEvent = (m: { subject: string }) => m.subject.startsWith(`${env.namespace}.chat.`);
    expect(chats.filter((m) => chatEvent(m) && m.text.includes('"ChatCreated"'))).toEqual([]);
    const snapshots = chats.filter((m) => m.subject.startsWith(`${env.namespace}.chatsnap.`)).map((m) => JSON.parse(m.text).data);
    expect(snapshots.map((x) => x.chatId).sort()).toEqual([direct, group, quiet].sort());
    const quietSnapshot = snapshots.find((x) => x.chatId === quiet);
    expect(quietSnapshot).toMatchObject({ type: 'group', title: 'quiet, renamed', seq: 2, pair: null });
    expect(quietSnapshot.members.map((m: { userId: string; role: string }) => [m.userId, m.role]).sort()).toEqual([[a.id, 'owner'], [b.id, 'member']].sort());
    expect(snapshots.find((x) => x.chatId === direct)).toMatchObject({ type: 'direct', pair: [a.id, b.id].sort() });
    expect(chats.some((m) => m.subject === `${env.namespace}.chat.${quiet}`)).toBe(false);
    expect(chats.some((m) => m.text.includes(FRESH))).toBe(true);
    expect(chats.filter((m) => m.subject === `${env.namespace}.attachment.${keptAttachmentId}`)).toHaveLength(1);
    for (const stream of ['audit', 'resets', 'receipts']) {
      const left = await storedMessages(nc, `${env.namespace}_${stream}`);
      expect(left.filter((m) => !m.subject.includes('.retention')), stream).toEqual([]);
    }

    // The chats go on: the next message continues the seq chain after the deletion event.
    const next = (await http(stack, 'POST', `/api/v1/chats/${group}/messages`, { token: a.accessToken, body: { clientMsgId: 'after', body: 'after the pass' } })).body;
    const expiredEvent = chats.filter((m) => m.text.includes('"MessagesExpired"') && m.text.includes(group));
    expect(expiredEvent).toHaveLength(1);
    expect(next.seq).toBe(JSON.parse(expiredEvent[0]!.text).seq + 1);
    // A member resuming that chat from before the purge is told to reload, up to the snapshot's seq.
    const socket = await TestSocket.open(stack.wsUrl, b.accessToken);
    try {
      socket.send({ op: 'resume', cursors: { [quiet]: 1 } });
      expect(await socket.next((f) => f.op === 'reset' && f.chatId === quiet)).toEqual({ op: 'reset', chatId: quiet, seq: quietSnapshot.seq });
    } finally {
      socket.ws.close();
    }
    // A chat whose every event was purged continues after its snapshot's seq, not at 1, and its
    // members still see it.
    const woken = await http(stack, 'POST', `/api/v1/chats/${quiet}/messages`, { token: b.accessToken, body: { clientMsgId: 'woken', body: 'still here' } });
    expect(woken.status).toBe(201);
    expect(woken.body.seq).toBe(quietSnapshot.seq + 1);
    const quietHistory = await eventually(async () => {
      const items = (await http(stack, 'GET', `/api/v1/chats/${quiet}/messages`, { token: a.accessToken })).body.items;
      return items.length === 1 ? items : undefined;
    });
    expect(quietHistory[0].seq).toBe(quietSnapshot.seq + 1);
  });

  it('a second pass at the same time finds nothing more, and a pass cannot start while another holds the lock', async () => {
    const again = await cleanup();
    expect(again.exitCode).toBe(0);
    expect(again.report?.rows).toMatchObject({ messages: 0, reactions: 0, attachments: 0, auditEntries: 0, resetTokens: 0, readReceipts: 0 });

    const kv = await new Kvm(nc).open(`${env.namespace}_retention`);
    await kv.create('pass', '{"host":"elsewhere"}');
    try {
      const locked = await cleanup();
      expect(locked.exitCode).toBe(1);
      expect(locked.report).toBeUndefined();
    } finally {
      await kv.purge('pass');
    }
  });

  it('a rebuild from the streams does not bring anything back, and rebuilds the purged chats from their snapshots as they are live', async () => {
    const structure = async () => ({
      chats: (await db.query('SELECT id, type, title, created_by, created_at, last_seq, last_activity_at FROM messages.chats ORDER BY id')).rows,
      members: (await db.query('SELECT chat_id, user_id, role, joined_seq FROM messages.chat_members ORDER BY chat_id, user_id')).rows,
      direct: (await db.query('SELECT user_a, user_b, chat_id FROM messages.direct_chats ORDER BY chat_id')).rows,
    });
    const live = await structure();
    expect(live.chats).toHaveLength(3);
    await stack.stop();
    await rebuildUsers(vars);
    await rebuildMessages(vars);
    stack = await startServices(vars);
    expect(await rows('SELECT count(*) AS n FROM messages.messages WHERE id = ANY($1::uuid[])', [old.messageIds])).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM messages.messages WHERE id = $1', [freshMessageId])).toBe(1);
    expect(await rows('SELECT count(*) AS n FROM messages.polls')).toBe(0);
    expect((await db.query('SELECT id FROM messages.attachments')).rows.map((r) => r.id)).toEqual([keptAttachmentId]);
    expect(await rows('SELECT count(*) AS n FROM messages.read_positions')).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM users.password_resets')).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM users.audit_log WHERE occurred_at < $1', [cutoff])).toBe(0);
    expect(await structure()).toEqual(live);
    expect(await rows('SELECT count(*) AS n FROM users.users')).toBe(2);
    const history = (await http(stack, 'GET', `/api/v1/chats/${direct}/messages`, { token: a.accessToken })).body.items;
    expect(history.map((m: { id: string }) => m.id)).toEqual([freshMessageId]);
  });

  it('a pass that expires a message whose upload record an earlier pass carried to the head deletes that record too', async () => {
    // A cutoff after the fresh message but before the first pass carried its file's upload record:
    // the message expires, the carried record (stored later) is not below the cutoff.
    const between = new Date((freshSentBy.getTime() + firstPassFrom.getTime()) / 2);
    const pass = await runCleanup(['--now', new Date(between.getTime() + 30 * DAY_MS).toISOString()], { ...vars, RETENTION_ORPHAN_FILE_GRACE_SECONDS: '0' }, () => {});
    expect(pass.exitCode).toBe(0);
    expect(pass.report?.rows.messages).toBe(1);
    const onSubject = async () => (await storedMessages(nc, `${env.namespace}_chats`)).filter((m) => m.subject === `${env.namespace}.attachment.${keptAttachmentId}`).map((m) => JSON.parse(m.text).type as string);
    // Its release leaves the tombstone alone on the subject; before, the record (file name,
    // uploader) stayed about a year more, until its own copy fell below a cutoff.
    await eventually(async () => ((await onSubject()).includes('AttachmentDeleted') ? true : undefined), 10_000, 'the tombstone');
    expect(await onSubject()).toEqual(['AttachmentDeleted']);
    expect(await rows('SELECT count(*) AS n FROM messages.attachments')).toBe(0);
  });

  it('a later pass carries the claims and snapshots that lie below its cutoff to the head, so no chat loses its structure, pair or seq', async () => {
    const seqOf = async (chatId: string) => Number((await db.query('SELECT last_seq FROM messages.chats WHERE id = $1', [chatId])).rows[0].last_seq);
    const before = { quiet: await seqOf(quiet), direct: await seqOf(direct) };
    // Everything so far is older than this pass's cutoff: the first pass's snapshots and the claim too.
    const later = new Date(cutoff.getTime() + 90 * DAY_MS).toISOString();
    // This pass purges in steps of 4 sequences, as 'auto' does (by 20,000) on NATS 2.10 and newer;
    // the first pass took one request, as 'auto' does on the 2.9 that CI runs.
    const pass = await runCleanup(['--now', later], { ...vars, RETENTION_ORPHAN_FILE_GRACE_SECONDS: '0', RETENTION_PURGE_CHUNK: '4' }, () => {});
    expect(pass.exitCode).toBe(0);
    expect(pass.report!.streamEvents.chats).toBeGreaterThan(4);
    const stored = await storedMessages(nc, `${env.namespace}_chats`);
    const claims = stored.filter((m) => m.subject.startsWith(`${env.namespace}.chatclaim.`)).map((m) => JSON.parse(m.text).data);
    expect(claims).toEqual([expect.objectContaining({ chatId: direct })]);
    const snapshots = stored.filter((m) => m.subject.startsWith(`${env.namespace}.chatsnap.`)).map((m) => JSON.parse(m.text).data);
    expect(snapshots.map((x) => x.chatId).sort()).toEqual([direct, group, quiet].sort());
    expect(stored.filter((m) => m.subject.startsWith(`${env.namespace}.chat.`) && !m.text.includes('"MessagesExpired"'))).toEqual([]);
    // Each chat goes on after its last seq, and its members are still its members.
    for (const [chatId, last] of [[quiet, before.quiet], [direct, before.direct]] as const) {
      const sent = await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: b.accessToken, body: { clientMsgId: `later-${chatId}`, body: 'a year on' } });
      expect(sent.status).toBe(201);
      expect(sent.body.seq).toBeGreaterThan(last);
    }
    expect((await http(stack, 'POST', '/api/v1/chats', { token: a.accessToken, body: { type: 'direct', userId: b.id } })).body.id).toBe(direct);
  });
});
