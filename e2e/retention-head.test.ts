import { buildMeta, newId, streamName, subjects, type ChatEvent } from '@parley/contracts';
import { eventually } from '@parley/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAfterHead, DAY_MS, startRetentionStack, type RetentionStack } from './retention-kit.js';
import { http, storedMessages, TestSocket } from './stack.js';

/**
 * A chat whose newest event was deleted from the stream: a reaction that raced its message's
 * deletion (decided on a state from before it), which the projection takes out and the
 * stream-content reactor deletes. A retention pass knows the chat from the stream alone, whose
 * head is then the event before; it gave its expiry the deleted reaction's seq again, and gateways
 * dropped it as delivered, so a member's open client kept the expired messages on screen. The race
 * itself is a matter of microseconds, so its outcome is injected: the reaction is appended as the
 * writer that lost the race appends it (the chat's next seq, after the head it had read).
 */
describe('retention: the expiry of a chat whose newest event the stream no longer holds', () => {
  let rs: RetentionStack;
  beforeAll(async () => {
    rs = await startRetentionStack('retention-head', { MESSAGE_RETENTION_DAYS: '30' });
  });
  afterAll(async () => {
    await rs?.stop();
  });

  it('takes the next seq after the deleted event, and an open client is told', async () => {
    const { services: stack, ann, bob, db, nc, env } = rs;
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id as string;
    const socket = await TestSocket.open(stack.wsUrl, bob.accessToken);
    try {
      const send = async (clientMsgId: string) => (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId, body: `old ${clientMsgId}` } })).body as { id: string; seq: number };
      const kept = await send('first');
      const gone = await send('second');
      expect((await http(stack, 'DELETE', `/api/v1/messages/${gone.id}`, { token: ann.accessToken })).status).toBe(204);
      const deleted = await socket.next((f) => f.type === 'message.deleted' && f.chatId === chatId);

      // Bob's reaction to the deleted message, decided before its deletion, stored after it.
      const stream = streamName(env.namespace, 'chats');
      const subject = subjects.chat(env.namespace, chatId);
      const onSubject = async () => (await storedMessages(nc, stream)).filter((m) => m.subject === subject);
      const head = (await onSubject()).at(-1)!;
      const raced = {
        type: 'ReactionAdded',
        version: 1,
        chatId,
        seq: deleted.seq + 1,
        data: { messageId: gone.id, userId: bob.id, emoji: '👍' },
        meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: bob.id, correlationId: newId() }),
      } as ChatEvent;
      await appendAfterHead(nc, env.namespace, raced, `raced:${chatId}`);
      expect((await socket.next((f) => f.type === 'reaction.added' && f.chatId === chatId)).seq).toBe(raced.seq);
      // The projection drops it and the stream-content reactor deletes it: the stream's head is
      // the deletion again, while the chat has had seq `raced.seq`.
      await eventually(async () => (await onSubject()).every((m) => !m.text.includes('"ReactionAdded"')) || undefined, 10_000, 'the raced reaction deleted from the stream');
      expect((await onSubject()).at(-1)?.seq).toBe(head.seq);
      expect(Number((await db.query('SELECT last_seq FROM messages.chats WHERE id = $1', [chatId])).rows[0].last_seq)).toBe(raced.seq);

      // NATS 2.9.10 forgets a subject whose newest message was deleted ("no message" for it): a
      // client resuming from before the deletion must still get it, not an empty answer.
      const resuming = await TestSocket.open(stack.wsUrl, bob.accessToken, { handshake: false });
      try {
        resuming.send({ op: 'resume', cursors: { [chatId]: gone.seq } });
        expect(await resuming.next((f) => f.chatId === chatId && f.seq !== undefined)).toMatchObject({ type: 'message.deleted', seq: deleted.seq });
      } finally {
        resuming.ws.close();
      }

      // A pass a month and more later, in a chat quiet since.
      const pass = await rs.passAt(new Date(Date.now() + 31 * DAY_MS));
      expect(pass.exitCode).toBe(0);
      expect(pass.report?.rows.messages).toBe(2);
      const expired = await socket.next((f) => f.type === 'chat.updated' && f.chatId === chatId && f.data.historyExpiredUpToSeq !== undefined, 10_000);
      expect(expired.seq).toBe(raced.seq + 1);
      expect(expired.data.historyExpiredUpToSeq).toBeGreaterThanOrEqual(gone.seq);
      expect(Number((await db.query('SELECT count(*) AS n FROM messages.messages WHERE id = ANY($1::uuid[])', [[kept.id, gone.id]])).rows[0].n)).toBe(0);

      // The chat goes on after it.
      const next = await send('after');
      expect(next.seq).toBe(raced.seq + 2);
      expect((await socket.next((f) => f.type === 'message.created' && f.chatId === chatId && f.data.id === next.id)).seq).toBe(next.seq);
    } finally {
      socket.ws.close();
    }
  });
});
