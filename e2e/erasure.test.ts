import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { runCleanup } from '../services/retention/src/cli.js';
import { rebuildMessages } from '../services/messages/src/rebuild.js';
import { rebuildUsers } from '../services/users/src/rebuild.js';
import { erasureApplied } from './erasure-applied.js';
import { cachedTexts, http, register, startServices, storedMessages, TestSocket, type Account, type Services } from './stack.js';

describe('erasure on request: DELETE /api/v1/users/me', () => {
  let env: TestEnv;
  let vars: Record<string, string>;
  let stack: Services;
  let db: pg.Client;
  let nc: NatsConnection;
  let redis: Redis;
  let files: string;
  let ann: Account; // erased with a purge
  let bob: Account;
  let cat: Account;
  let dan: Account; // erased, messages kept
  let direct: string;
  let group: string;
  let annFile: string;
  let annUnsent: string;
  let bobPoll: { id: string; poll: { id: string; options: { id: string }[] } };
  const SECRET = 'annsecretword';
  const rows = async (sql: string, params: unknown[] = []) => Number((await db.query(sql, params)).rows[0].n);
  const streamTexts = async (stream: string) => (await storedMessages(nc, stream)).map((m) => `${m.subject} ${m.text}`);
  let sent = 0;
  const send = async (who: Account, chatId: string, body: string, extra: object = {}) =>
    (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: who.accessToken, body: { clientMsgId: `e-${++sent}`, body, ...extra } })).body;

  beforeAll(async () => {
    files = mkdtempSync(path.join(tmpdir(), 'parley-erasure-'));
    env = await createTestEnv();
    vars = { ...env.env, PORT: '0', METRICS_PORT: '0', PROJECTOR_ACK_WAIT_MS: '2000', ATTACHMENTS_DIR: files, MAIL_DIR: mkdtempSync(path.join(tmpdir(), 'parley-erasure-mail-')) };
    stack = await startServices(vars);
    db = new pg.Client({ connectionString: env.databaseUrl });
    await db.connect();
    nc = await env.connectNats();
    redis = new Redis(env.redisUrl);
    [ann, bob, cat, dan] = [await register(stack), await register(stack), await register(stack), await register(stack)];
    direct = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id;
    group = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'group', title: 'club', memberIds: [bob.id, cat.id, dan.id] } })).body.id;

    const form = new FormData();
    form.append('file', new Blob([`${SECRET} in a file`], { type: 'text/plain' }), 'ann.txt');
    annFile = ((await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${ann.accessToken}` }, body: form })).json()) as { id: string }).id;
    // And one she never sent.
    const unsentForm = new FormData();
    unsentForm.append('file', new Blob([`${SECRET} never sent`], { type: 'text/plain' }), `${SECRET}-draft.txt`);
    annUnsent = ((await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${ann.accessToken}` }, body: unsentForm })).json()) as { id: string }).id;
    await send(ann, direct, `hello bob, ${SECRET}`, { attachmentIds: [annFile] });
    const annInGroup = await send(ann, group, `group hello ${SECRET}`);
    await http(stack, 'PATCH', `/api/v1/messages/${annInGroup.id}`, { token: ann.accessToken, body: { body: `edited ${SECRET}` } });
    const bobMessage = await send(bob, group, 'bob speaks');
    await send(dan, group, 'dan was here');
    bobPoll = (await http(stack, 'POST', `/api/v1/chats/${group}/polls`, { token: bob.accessToken, body: { question: 'lunch?', options: ['yes', 'no'] } })).body;
    expect((await http(stack, 'POST', `/api/v1/messages/${bobMessage.id}/reactions`, { token: ann.accessToken, body: { emoji: '❤️' } })).status).toBe(201);
    expect((await http(stack, 'POST', `/api/v1/polls/${bobPoll.poll.id}/votes`, { token: ann.accessToken, body: { optionIds: [bobPoll.poll.options[0]!.id] } })).status).toBe(200);
    expect((await http(stack, 'POST', `/api/v1/chats/${group}/read`, { token: ann.accessToken, body: { messageId: bobMessage.id } })).status).toBe(204);
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: ann.accessToken, body: { userId: bob.id } })).status).toBe(201);
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: cat.accessToken, body: { userId: ann.id } })).status).toBe(201);
    expect((await http(stack, 'POST', '/api/v1/auth/password-reset/request', { body: { email: `${ann.username}@example.test` } })).status).toBe(202);
    await eventually(async () => ((await rows('SELECT count(*) AS n FROM users.password_resets')) === 1 && (await rows('SELECT count(*) AS n FROM messages.read_positions')) === 1) || undefined);
    // Warm the caches that hold Ann: her profile as others see it, Cat's contacts, the chat lists.
    expect((await http(stack, 'GET', `/api/v1/users/${ann.id}`, { token: bob.accessToken })).body.username).toBe(ann.username);
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: cat.accessToken })).body.items).toHaveLength(1);
    expect((await http(stack, 'GET', '/api/v1/chats', { token: bob.accessToken })).status).toBe(200);
  });

  afterAll(async () => {
    await redis?.quit();
    await nc?.close();
    await db?.end();
    await stack?.stop().catch(() => {});
    await env?.cleanup();
  });

  it('refuses without the right password, and changes nothing', async () => {
    const wrong = await http(stack, 'DELETE', '/api/v1/users/me', { token: ann.accessToken, body: { password: 'not-her-password' } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('invalid_credentials');
    expect((await http(stack, 'DELETE', '/api/v1/users/me', { token: ann.accessToken, body: {} })).status).toBe(400);
    expect((await http(stack, 'DELETE', '/api/v1/users/me', { token: ann.accessToken, body: { password: ann.password, purgeMessages: 'yes' } })).status).toBe(400);
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: ann.accessToken })).status).toBe(200);
  });

  it('erases the account and, with purgeMessages, everything the person wrote, from Postgres, Redis, disk and the streams', async () => {
    // Ann has a last seen time (she was online and went offline), and her gateway's presence
    // notices are watched: one goes out when her socket closes on erasure, after that time is written.
    const ns = env.namespace;
    const lastSeenOfAnn = async () => (await storedMessages(nc, `KV_${ns}_lastseen`)).filter((m) => m.subject === `$KV.${ns}_lastseen.${ann.id}`);
    const annOffline: unknown[] = [];
    const notices = nc.subscribe(`${ns}.presence.${ann.id}`, {
      callback: (_err, msg) => {
        if (!msg.json<{ online: boolean }>().online) annOffline.push(msg.json());
      },
    });
    (await TestSocket.open(stack.wsUrl, ann.accessToken)).close();
    await eventually(async () => (annOffline.length === 1 || undefined) && ((await lastSeenOfAnn()).length === 1 || undefined), 5_000, 'ann last seen');

    const annSocket = await TestSocket.open(stack.wsUrl, ann.accessToken);
    const bobSocket = await TestSocket.open(stack.wsUrl, bob.accessToken);
    const answer = await http(stack, 'DELETE', '/api/v1/users/me', { token: ann.accessToken, body: { password: ann.password, purgeMessages: true } });
    expect(answer.status).toBe(202);

    // Her sessions end at once; she cannot log in again.
    await eventually(async () => annSocket.closed ?? undefined);
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: ann.accessToken })).status).toBe(401);
    expect((await http(stack, 'POST', '/api/v1/auth/refresh', { body: { refreshToken: ann.refreshToken } })).status).toBe(401);
    expect((await http(stack, 'POST', '/api/v1/auth/login', { body: { login: ann.username, password: ann.password } })).status).toBe(401);

    // The others see her leave every chat; the group gets a new owner.
    const left = await bobSocket.next((f) => f.type === 'member.removed' && f.chatId === group);
    expect(left.data).toMatchObject({ userId: ann.id, erased: true, purged: true });
    const chat = await eventually(async () => {
      const c = (await http(stack, 'GET', `/api/v1/chats/${group}`, { token: bob.accessToken })).body;
      return c.members.some((m: { userId: string }) => m.userId === ann.id) ? undefined : c;
    });
    expect(chat.members.find((m: { role: string }) => m.role === 'owner')).toBeTruthy();
    expect((await http(stack, 'GET', `/api/v1/users/${ann.id}`, { token: bob.accessToken })).body).toMatchObject({ id: ann.id, displayName: 'Deleted account', deleted: true });
    // A direct chat with her is refused as with anyone unknown (it answered 200 with the old chat, Bob alone in it).
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.chat_members WHERE chat_id = $1 AND user_id = $2', [direct, ann.id])) === 0 || undefined);
    expect((await http(stack, 'POST', '/api/v1/chats', { token: bob.accessToken, body: { type: 'direct', userId: ann.id } })).status).toBe(404);
    expect((await http(stack, 'GET', '/api/v1/contacts', { token: cat.accessToken })).body.items).toEqual([]);

    // Her messages, reaction, vote, read position and file are gone; the others' stay.
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.messages WHERE sender_id = $1', [ann.id])) === 0 || undefined);
    const groupHistory = (await http(stack, 'GET', `/api/v1/chats/${group}/messages`, { token: bob.accessToken })).body.items;
    expect(groupHistory.map((m: { body: string }) => m.body).sort()).toEqual(['bob speaks', 'dan was here', 'lunch?']);
    expect(groupHistory.find((m: { body: string }) => m.body === 'bob speaks').reactions).toEqual([]);
    expect(groupHistory.find((m: { body: string }) => m.body === 'lunch?').poll.options.map((o: { votes: number }) => o.votes)).toEqual([0, 0]);
    expect((await http(stack, 'GET', `/api/v1/search?q=${SECRET}`, { token: bob.accessToken })).body.items).toEqual([]);
    expect(existsSync(path.join(files, annFile.slice(-2), annFile))).toBe(false);
    // The file she never sent, its name (hers) and its row go now, not at the sweep a day later.
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.attachments WHERE uploader_id = $1', [ann.id])) === 0 || undefined, 10_000, 'her uploads gone');
    expect(existsSync(path.join(files, annUnsent.slice(-2), annUnsent))).toBe(false);
    // Her read positions go through the receipts stream (the messages service's erasure reactor).
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.read_positions WHERE user_id = $1', [ann.id])) === 0 || undefined);
    for (const [table, column] of [['users.users', 'id'], ['users.contacts', 'user_id'], ['users.contacts', 'contact_id'], ['users.sessions', 'user_id'], ['users.password_resets', 'user_id'], ['messages.chat_members', 'user_id'], ['messages.read_positions', 'user_id'], ['messages.reactions', 'user_id'], ['messages.poll_votes', 'user_id']]) {
      expect(await rows(`SELECT count(*) AS n FROM ${table} WHERE ${column} = $1`, [ann.id]), `${table}.${column}`).toBe(0);
    }
    expect(await rows(`SELECT count(*) AS n FROM users.audit_log WHERE user_id = $1 AND action <> 'account.deleted'`, [ann.id])).toBe(0);
    // The one entry left names her id only: not the address or browser she erased from.
    await eventually(async () => (await rows(`SELECT count(*) AS n FROM users.audit_log WHERE user_id = $1 AND action = 'account.deleted'`, [ann.id])) === 1 || undefined, 5_000, 'the account.deleted entry');
    expect(await rows(`SELECT count(*) AS n FROM users.audit_log WHERE user_id = $1 AND (ip <> '' OR user_agent <> '')`, [ann.id])).toBe(0);

    // Redis holds nothing of hers.
    const values = [...(await cachedTexts(redis, env.namespace)).values()];
    expect(values.filter((v) => v.includes(ann.username) || v.includes(SECRET))).toEqual([]);

    // Her last seen time is gone (no marker either), once her gateway has handled the close.
    await eventually(async () => annOffline.length === 2 || undefined, 5_000, 'ann offline on erasure');
    await eventually(async () => ((await lastSeenOfAnn()).length === 0 ? true : undefined), 5_000, 'ann last seen gone');
    notices.unsubscribe();

    // The streams hold only her id: the tombstone, the ledger entry, chat structure events.
    for (const stream of ['users', 'chats', 'resets', 'receipts', 'audit']) {
      const texts = await streamTexts(`${ns}_${stream}`);
      expect(texts.filter((t) => t.includes(ann.username) || t.includes(SECRET)), stream).toEqual([]);
    }
    expect((await streamTexts(`${ns}_users`)).filter((t) => t.startsWith(`${ns}.user.${ann.id} `)).map((t) => JSON.parse(t.slice(t.indexOf(' ') + 1)).type)).toEqual(['UserErased']);
    const receiptTypes = (await streamTexts(`${ns}_receipts`)).filter((t) => t.includes(ann.id)).map((t) => JSON.parse(t.slice(t.indexOf(' ') + 1)).type);
    expect(receiptTypes).toEqual(['ReadPositionsErased']);
    for (const [stream, type] of [['audit', 'AuditEntriesErased'], ['resets', 'ResetTokensErased']]) {
      const events = (await streamTexts(`${ns}_${stream}`)).filter((t) => t.startsWith(`${ns}.${stream === 'audit' ? 'audit' : 'reset'}.${ann.id} `));
      expect(events.map((t) => JSON.parse(t.slice(t.indexOf(' ') + 1)).type), stream).toContain(type);
    }
    expect((await streamTexts(`${ns}_erasures`)).filter((t) => t.includes(ann.id))).toHaveLength(1);

    // Her username is free again.
    expect((await http(stack, 'POST', '/api/v1/auth/register', { body: { username: ann.username, email: `${ann.username}@example.test`, password: 'a-new-person-password' } })).status).toBe(201);
    annSocket.ws.close();
    bobSocket.ws.close();
  });

  it('without purgeMessages keeps the messages under a "deleted account" identity', async () => {
    // Dan was seen, and is offline when erased: the erasure itself removes his last seen time.
    const lastSeenOfDan = async () => (await storedMessages(nc, `KV_${env.namespace}_lastseen`)).filter((m) => m.subject === `$KV.${env.namespace}_lastseen.${dan.id}`);
    (await TestSocket.open(stack.wsUrl, dan.accessToken)).close();
    await eventually(async () => ((await lastSeenOfDan()).length === 1 ? true : undefined), 5_000, 'dan last seen');
    expect((await http(stack, 'DELETE', '/api/v1/users/me', { token: dan.accessToken, body: { password: dan.password } })).status).toBe(202);
    expect(await lastSeenOfDan()).toEqual([]);
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.chat_members WHERE user_id = $1', [dan.id])) === 0 || undefined);
    const history = (await http(stack, 'GET', `/api/v1/chats/${group}/messages`, { token: bob.accessToken })).body.items;
    const kept = history.find((m: { body: string }) => m.body === 'dan was here');
    expect(kept.senderId).toBe(dan.id);
    expect((await http(stack, 'GET', `/api/v1/users/${dan.id}`, { token: bob.accessToken })).body).toMatchObject({ username: 'deleted', deleted: true });
    expect(await rows('SELECT count(*) AS n FROM users.users WHERE id = $1', [dan.id])).toBe(0);
    // Nobody can be added as a contact or blocked once erased: no new event names him.
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: bob.accessToken, body: { userId: dan.id } })).status).toBe(404);
    expect((await http(stack, 'POST', '/api/v1/users/me/blocks', { token: bob.accessToken, body: { userId: dan.id } })).status).toBe(404);
  });

  it('with purgeMessages, also removes the reactions and votes left in a chat the person had left', async () => {
    const [eve, owner] = [await register(stack), await register(stack)];
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'group', title: 'left behind', memberIds: [eve.id] } })).body.id;
    const message = await send(owner, chatId, 'owner speaks');
    const poll = (await http(stack, 'POST', `/api/v1/chats/${chatId}/polls`, { token: owner.accessToken, body: { question: 'stay?', options: ['yes', 'no'] } })).body;
    expect((await http(stack, 'POST', `/api/v1/messages/${message.id}/reactions`, { token: eve.accessToken, body: { emoji: '👋' } })).status).toBe(201);
    expect((await http(stack, 'POST', `/api/v1/polls/${poll.poll.id}/votes`, { token: eve.accessToken, body: { optionIds: [poll.poll.options[1]!.id] } })).status).toBe(200);
    expect((await http(stack, 'DELETE', `/api/v1/chats/${chatId}/members/${eve.id}`, { token: eve.accessToken })).status).toBe(204);
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.chat_members WHERE user_id = $1', [eve.id])) === 0 || undefined);
    expect((await http(stack, 'DELETE', '/api/v1/users/me', { token: eve.accessToken, body: { password: eve.password, purgeMessages: true } })).status).toBe(202);

    // Before, only chats she was still in (or had written in) were visited: these stayed.
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.reactions WHERE user_id = $1', [eve.id])) === 0 || undefined, 10_000, 'her reaction gone');
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.poll_votes WHERE user_id = $1', [eve.id])) === 0 || undefined, 10_000, 'her vote gone');
    const history = (await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: owner.accessToken })).body.items;
    expect(history.find((m: { body: string }) => m.body === 'owner speaks').reactions).toEqual([]);
    expect(history.find((m: { body: string }) => m.body === 'stay?').poll.options.map((o: { votes: number }) => o.votes)).toEqual([0, 0]);
    // And from the chat's events in the stream (a rebuild would bring them back).
    const chosen = async () =>
      (await streamTexts(`${env.namespace}_chats`)).filter((t) => t.startsWith(`${env.namespace}.chat.${chatId} `)).map((t) => JSON.parse(t.slice(t.indexOf(' ') + 1)) as { type: string; data: { userId?: string } }).filter((e) => (e.type === 'ReactionAdded' || e.type === 'PollVoted') && e.data.userId === eve.id);
    await eventually(async () => ((await chosen()).length === 0 ? true : undefined), 10_000, 'her reaction and vote gone from the stream');
  });

  it('with purgeMessages, also visits a chat left after taking a reaction and a vote back: their events leave the stream', async () => {
    const [eve, owner] = [await register(stack), await register(stack)];
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'group', title: 'taken back', memberIds: [eve.id] } })).body.id;
    const message = await send(owner, chatId, 'owner asks');
    const poll = (await http(stack, 'POST', `/api/v1/chats/${chatId}/polls`, { token: owner.accessToken, body: { question: 'sure?', options: ['yes', 'no'] } })).body;
    expect((await http(stack, 'POST', `/api/v1/messages/${message.id}/reactions`, { token: eve.accessToken, body: { emoji: '🤔' } })).status).toBe(201);
    expect((await http(stack, 'DELETE', `/api/v1/messages/${message.id}/reactions/${encodeURIComponent('🤔')}`, { token: eve.accessToken })).status).toBe(204);
    expect((await http(stack, 'POST', `/api/v1/polls/${poll.poll.id}/votes`, { token: eve.accessToken, body: { optionIds: [poll.poll.options[0]!.id] } })).status).toBe(200);
    expect((await http(stack, 'POST', `/api/v1/polls/${poll.poll.id}/votes`, { token: eve.accessToken, body: { optionIds: [] } })).status).toBe(200);
    expect((await http(stack, 'DELETE', `/api/v1/chats/${chatId}/members/${eve.id}`, { token: eve.accessToken })).status).toBe(204);
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.chat_members WHERE user_id = $1', [eve.id])) === 0 || undefined);
    // Nothing of hers in the chat's rows now, but four events of hers on its subject.
    const chatEvents = async () =>
      (await storedMessages(nc, `${env.namespace}_chats`)).filter((m) => m.subject === `${env.namespace}.chat.${chatId}`).map((m) => ({ seq: m.seq, ...(JSON.parse(m.text) as { type: string; data: { userId?: string } }) }));
    const hers = async () => (await chatEvents()).filter((e) => ['ReactionAdded', 'ReactionRemoved', 'PollVoted'].includes(e.type) && e.data.userId === eve.id);
    expect(await hers()).toHaveLength(4);
    expect((await http(stack, 'DELETE', '/api/v1/users/me', { token: eve.accessToken, body: { password: eve.password, purgeMessages: true } })).status).toBe(202);

    // Done when the erasure process has applied her UserErased (it deletes her events itself).
    await erasureApplied(nc, db, env.namespace, eve.id);
    // Before, the chat was not visited: no MemberErased in it, and her events stayed.
    const erased = (await chatEvents()).find((e) => e.type === 'MemberErased' && e.data.userId === eve.id);
    expect(erased).toBeTruthy();
    expect(await hers()).toEqual([]);
    // And the rows that stood for her events go with them, as a rebuild would not make them.
    await eventually(async () => (await rows(`SELECT count(*) AS n FROM messages.projection_checkpoints WHERE projector = 'chats-projection' AND stream_seq >= $1`, [erased!.seq])) === 1 || undefined, 10_000, 'her MemberErased applied');
    expect(await rows('SELECT count(*) AS n FROM messages.dependent_events WHERE user_id = $1', [eve.id])).toBe(0);
  });

  it('a deleted message leaves no body in the stream, neither the original nor its edits', async () => {
    const message = await send(bob, group, 'bob regrets sayingthis');
    expect((await http(stack, 'PATCH', `/api/v1/messages/${message.id}`, { token: bob.accessToken, body: { body: 'bob regrets editingthis' } })).status).toBe(200);
    expect((await http(stack, 'DELETE', `/api/v1/messages/${message.id}`, { token: bob.accessToken })).status).toBe(204);
    const texts = await eventually(async () => {
      const all = await streamTexts(`${env.namespace}_chats`);
      return all.some((t) => t.includes('sayingthis') || t.includes('editingthis')) ? undefined : all;
    });
    expect(texts.filter((t) => t.includes(message.id)).map((t) => JSON.parse(t.slice(t.indexOf(' ') + 1)).type)).toEqual(['MessageDeleted']);
    expect((await streamTexts(`${env.namespace}_erasures`)).filter((t) => t.includes(message.id))).toHaveLength(1);
  });

  it('an edit stored after its message was deleted leaves the stream too (the edit raced the delete)', async () => {
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: bob.accessToken, body: { type: 'group', title: 'edit race', memberIds: [cat.id] } })).body.id;
    const message = await send(bob, chatId, 'first draft');
    expect((await http(stack, 'DELETE', `/api/v1/messages/${message.id}`, { token: bob.accessToken })).status).toBe(204);
    // What an edit decided on a state without the deletion stores: its MessageEdited after the
    // MessageDeleted. A race of two requests cannot be had on demand, so its outcome is appended.
    const stream = `${env.namespace}_chats`;
    const subject = `${env.namespace}.chat.${chatId}`;
    const head = await (await jetstreamManager(nc)).streams.getMessage(stream, { last_by_subj: subject });
    const headSeq = head!.json<{ seq: number }>().seq;
    const edit = {
      type: 'MessageEdited',
      version: 1,
      chatId,
      seq: headSeq + 1,
      data: { messageId: message.id, body: `secret second draft ${SECRET}`, editedBy: bob.id },
      meta: { eventId: crypto.randomUUID(), occurredAt: new Date().toISOString(), actorId: bob.id, correlationId: crypto.randomUUID(), causationId: null },
    };
    const ack = await jetstream(nc).publish(subject, JSON.stringify(edit), { expect: { lastSubjectSequence: head!.seq } });
    // The projection has taken it, and then the stream-content reactor deletes it (before, it stayed).
    await eventually(async () => (await rows(`SELECT count(*) AS n FROM messages.projection_checkpoints WHERE projector = 'chats-projection' AND stream_seq >= $1`, [ack.seq])) === 1 || undefined, 10_000, 'the edit projected');
    await eventually(async () => ((await (await jetstreamManager(nc)).streams.getMessage(stream, { seq: ack.seq })) === null ? true : undefined), 15_000, 'the late edit gone from the stream');
    expect((await streamTexts(stream)).filter((t) => t.includes(SECRET) && t.includes(chatId))).toEqual([]);
  });

  it('the routine retention pass erases again what a restored backup brought back (the ledger)', async () => {
    // A restore from before the erasures: the rows are back (simulated by writing them directly).
    await db.query(
      `INSERT INTO users.users (id, username, username_lower, email, email_lower, display_name, password_hash, created_at, stream_seq)
       VALUES ($1, 'dan-restored', 'dan-restored', 'dan-restored@example.test', 'dan-restored@example.test', 'Dan', 'x', now(), 0)`,
      [dan.id],
    );
    const { rows: deleted } = await db.query(`UPDATE messages.messages SET deleted_at = NULL, body = 'restored body' WHERE deleted_at IS NOT NULL RETURNING id`);
    expect(deleted.length).toBeGreaterThan(0);
    const { exitCode, report } = await runCleanup([], vars, () => {});
    expect(exitCode).toBe(0);
    expect(report?.ledger).toMatchObject({ accountsReerased: 1, messagesRedeleted: deleted.length });
    expect(await rows('SELECT count(*) AS n FROM users.users WHERE id = $1', [dan.id])).toBe(0);
    await eventually(async () => (await rows(`SELECT count(*) AS n FROM messages.messages WHERE body = 'restored body'`)) === 0 || undefined);
  });

  it('a rebuild from the streams does not bring the accounts back', async () => {
    await stack.stop();
    await rebuildUsers(vars);
    await rebuildMessages(vars);
    stack = await startServices(vars);
    expect(await rows('SELECT count(*) AS n FROM users.users WHERE id = ANY($1::uuid[])', [[ann.id, dan.id]])).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM users.erased_users WHERE id = ANY($1::uuid[])', [[ann.id, dan.id]])).toBe(2);
    expect(await rows('SELECT count(*) AS n FROM messages.messages WHERE sender_id = $1', [ann.id])).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM messages.messages WHERE sender_id = $1', [dan.id])).toBe(1);
    expect(await rows('SELECT count(*) AS n FROM messages.chat_members WHERE user_id = ANY($1::uuid[])', [[ann.id, dan.id]])).toBe(0);
    // Nor their direct-chat pairs (a snapshot's pair brought them back).
    expect(await rows('SELECT count(*) AS n FROM messages.direct_chats WHERE user_a = ANY($1::uuid[]) OR user_b = ANY($1::uuid[])', [[ann.id, dan.id]])).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM users.contacts WHERE contact_id = $1 OR user_id = $1', [ann.id])).toBe(0);
    expect(await rows('SELECT count(*) AS n FROM messages.reactions WHERE user_id = $1', [ann.id])).toBe(0);
  });
});
