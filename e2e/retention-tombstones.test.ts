import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMeta, newId, type ChatEvent } from '@parley/contracts';
import { eventually } from '@parley/testing';
import { rebuildMessages } from '../services/messages/src/rebuild.js';
import { appendAfterHead, DAY_MS, markCutoff, startRetentionStack, type RetentionStack } from './retention-kit.js';
import { http, register, storedMessages } from './stack.js';

/**
 * A deleted message's tombstone (its row: seq, sender, time) expires with the message. Deleting a
 * message removes its MessageSent from the stream, so the pass's scan never saw that seq: the
 * tombstone of the newest old message outlived the retention period (history showed it, the chat
 * list showed it as the last message), and a chat whose only old message was deleted got no
 * MessagesExpired at all. The pass now asks the messages service for expired tombstones, and the
 * expiry takes their MessageDeleted events out of the stream as it does a message's later edits.
 */
describe('retention: tombstones of deleted messages expire with the messages', () => {
  let rs: RetentionStack;
  /** The group of the first test, every event of it purged by that test's pass. */
  let group = '';
  /** A pass a retention period after `cutoff`, orphan files swept at once. */
  const passAfter = (cutoff: Date) => rs.passAt(new Date(cutoff.getTime() + 30 * DAY_MS), { RETENTION_ORPHAN_FILE_GRACE_SECONDS: '0' });

  beforeAll(async () => {
    rs = await startRetentionStack('retention-tombstones', { MESSAGE_RETENTION_DAYS: '30' });
  });
  afterAll(async () => {
    await rs?.stop();
  });

  it('removes the tombstone of the newest old message, and expires a chat whose only old message was deleted', async () => {
    const { ann, bob, nc, env } = rs;
    const direct = (await http(rs.services, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id as string;
    group = (await http(rs.services, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'group', title: 'one message', memberIds: [bob.id] } })).body.id as string;
    const send = async (chatId: string, clientMsgId: string) => (await http(rs.services, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId, body: clientMsgId } })).body as { id: string; seq: number };
    const m1 = await send(direct, 'm1');
    const m2 = await send(direct, 'm2');
    const only = await send(group, 'only');
    const cutoff = await markCutoff();
    // Deleted after the cutoff (its MessageDeleted is fresh), the messages themselves older.
    for (const id of [m2.id, only.id]) expect((await http(rs.services, 'DELETE', `/api/v1/messages/${id}`, { token: ann.accessToken })).status).toBe(204);
    await eventually(async () => {
      const stored = await storedMessages(nc, `${env.namespace}_chats`);
      return stored.some((m) => m.text.includes('"MessageSent"') && (m.text.includes(m2.id) || m.text.includes(only.id))) ? undefined : true;
    }, 10_000, 'the deleted messages\' MessageSent gone from the stream');
    const rowsOf = (ids: string[]) => rs.count('SELECT count(*) AS n FROM messages.messages WHERE id = ANY($1::uuid[])', [ids]);
    expect(await rowsOf([m2.id, only.id])).toBe(2); // the tombstones

    const pass = await passAfter(cutoff);
    expect(pass.exitCode).toBe(0);
    expect(pass.report?.rows.messages).toBe(3);
    expect(pass.report?.chatsTouched).toBe(2);
    expect(await rowsOf([m1.id, m2.id, only.id])).toBe(0);

    // The API: no "deleted message" in history, none as either chat's last message.
    const expectGone = async () => {
      for (const chatId of [direct, group]) expect((await http(rs.services, 'GET', `/api/v1/chats/${chatId}/messages`, { token: bob.accessToken })).body.items).toEqual([]);
      // The cached lists go after the projection's commit.
      const lasts = await eventually(async () => {
        const items = (await http(rs.services, 'GET', '/api/v1/chats', { token: bob.accessToken })).body.items as { id: string; lastMessage: unknown }[];
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
    expect((await passAfter(cutoff)).report?.rows.messages).toBe(0);
    await rs.services.stop();
    await rebuildMessages(rs.vars);
    await rs.restart();
    expect(await rowsOf([m1.id, m2.id, only.id])).toBe(0);
    await expectGone();
  });

  it('expires a tombstone in a chat of which an earlier pass purged every event (the scan sees nothing of it)', async () => {
    const { ann, nc, env } = rs;
    const sent = (await http(rs.services, 'POST', `/api/v1/chats/${group}/messages`, { token: ann.accessToken, body: { clientMsgId: 'later', body: 'later' } })).body as { id: string; seq: number };
    const cutoff = await markCutoff();
    expect((await http(rs.services, 'DELETE', `/api/v1/messages/${sent.id}`, { token: ann.accessToken })).status).toBe(204);
    await eventually(async () => ((await storedMessages(nc, `${env.namespace}_chats`)).some((m) => m.text.includes('"MessageSent"') && m.text.includes(sent.id)) ? undefined : true), 10_000, 'the MessageSent gone');
    const pass = await passAfter(cutoff);
    expect(pass.exitCode).toBe(0);
    expect(pass.report?.rows.messages).toBe(1);
    expect(await rs.count('SELECT count(*) AS n FROM messages.messages WHERE chat_id = $1', [group])).toBe(0);
    expect((await storedMessages(nc, `${env.namespace}_chats`)).filter((m) => m.text.includes(sent.id))).toEqual([]);
  });

  it('never expires past a fresh message: an older message given a higher seq (a retried send keeps its first time) is left', async () => {
    const { services: stack, ann, nc, env } = rs;
    const cal = await register(stack);
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: cal.id } })).body.id as string;
    const cutoff = await markCutoff();
    const fresh = (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId: 'fresh', body: 'fresh' } })).body as { id: string; seq: number };
    // A send built before the cutoff that lost its first append to the fresh one and was stored
    // after it, its time kept, as ChatWriter stores a retried send.
    const older = newId();
    const retried = {
      type: 'MessageSent',
      version: 1,
      chatId,
      seq: fresh.seq + 1,
      data: { messageId: older, senderId: ann.id, clientMsgId: 'older', body: 'older', replyTo: null, attachmentIds: [] },
      meta: buildMeta({ eventId: newId(), occurredAt: new Date(cutoff.getTime() - 1_000), actorId: ann.id, correlationId: newId() }),
    } as ChatEvent;
    await appendAfterHead(nc, env.namespace, retried, `older:${chatId}`);
    await eventually(async () => (await http(stack, 'DELETE', `/api/v1/messages/${older}`, { token: ann.accessToken })).status === 204 || undefined, 10_000, 'the older message deleted');
    const pass = await passAfter(cutoff);
    expect(pass.exitCode).toBe(0);
    // The fresh message stays (an expiry up to the tombstone's seq took it); the tombstone waits
    // for the fresh message's own expiry.
    expect((await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: cal.accessToken })).body.items.map((m: { id: string }) => m.id)).toContain(fresh.id);
    expect(await rs.count('SELECT count(*) AS n FROM messages.messages WHERE id = $1', [fresh.id])).toBe(1);
  });
});
