import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId, parseAttachmentEvent, parseChatEvent, parseReceiptEvent, type AttachmentEvent, type ChatEvent, type ReceiptEvent } from '@parley/contracts';
import { createCache } from '@parley/cache';
import { createLogger } from '@parley/log';
import { migrate, type Pool } from '@parley/pg';
import { checkProjection, fixtureStream, fixtureTime, projectionDatabase, rolledBack } from '@parley/testing';
import { attachmentsProjection, ATTACHMENTS_PROJECTION_TABLES, ATTACHMENTS_QUEUE_TABLES } from './attachments/projection.js';
import { chatsSql, PROJECTION_TABLES, QUEUE_TABLES } from './chats/projection.js';
import { receiptsProjection, RECEIPTS_PROJECTION_TABLES } from './receipts/projection.js';

/**
 * The projection specification (issue 17) for every projection of the messages service: each
 * event applied twice, every suffix redelivered, and the bulk path, against real Postgres, must
 * leave the projection's tables as applying the events once one by one does.
 */
const MIGRATIONS = fileURLToPath(new URL('../migrations', import.meta.url));

let pool: Pool;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ pool, cleanup } = await projectionDatabase((p) => migrate(p, 'messages', MIGRATIONS)));
});
afterAll(() => cleanup?.());

const stored = fixtureStream();
const at = fixtureTime;

const O = newId();
const A = newId();
const B = newId();
const C = newId();

describe('chats projection', () => {
  const G = newId();
  const D = newId();
  const [m1, m2, m3, m4, d1, pollMessage, poll, attachment] = [newId(), newId(), newId(), newId(), newId(), newId(), newId(), newId()];
  const burst = Array.from({ length: 4 }, () => newId());
  const tail = Array.from({ length: 3 }, () => newId());
  const seqs = new Map<string, number>();
  const chat = (chatId: string, type: ChatEvent['type'], data: object) => {
    const seq = (seqs.get(chatId) ?? 0) + 1;
    seqs.set(chatId, seq);
    return stored(parseChatEvent, `t.chat.${chatId}`, { type, chatId, seq, data });
  };
  const sent = (chatId: string, messageId: string, senderId: string, attachmentIds: string[] = []) =>
    chat(chatId, 'MessageSent', { messageId, senderId, clientMsgId: `c-${messageId}`, body: `body of ${messageId}`, replyTo: null, attachmentIds });

  // Every chat event type, in an order that makes later events depend on earlier ones.
  const events = [
    chat(G, 'ChatCreated', { type: 'group', title: 'g', createdBy: O, members: [{ userId: O, role: 'owner' }, { userId: A, role: 'member' }, { userId: B, role: 'member' }] }),
    sent(G, m1, A, [attachment]),
    sent(G, m2, B),
    // A burst of plain messages: the bulk path's multi-row INSERT.
    ...burst.map((id) => sent(G, id, O)),
    chat(D, 'ChatCreated', { type: 'direct', title: null, createdBy: O, members: [{ userId: O, role: 'owner' }, { userId: A, role: 'member' }] }),
    sent(D, d1, O),
    chat(G, 'MemberAdded', { userId: C, role: 'member', addedBy: O }),
    chat(G, 'ReactionAdded', { messageId: m1, userId: B, emoji: '👍' }),
    chat(G, 'ReactionAdded', { messageId: m2, userId: A, emoji: '🎉' }),
    chat(G, 'MessageEdited', { messageId: m2, body: 'edited', editedBy: B }),
    chat(G, 'PollPosted', { messageId: pollMessage, senderId: O, clientMsgId: 'c-poll', pollId: poll, question: 'q?', options: [{ id: 'a', text: 'A' }, { id: 'b', text: 'B' }], multiple: false }),
    chat(G, 'PollVoted', { pollId: poll, messageId: pollMessage, userId: A, optionIds: ['a'] }),
    chat(G, 'PollVoted', { pollId: poll, messageId: pollMessage, userId: A, optionIds: ['b'] }),
    chat(G, 'PollVoted', { pollId: poll, messageId: pollMessage, userId: B, optionIds: ['a'] }),
    chat(G, 'PollClosed', { pollId: poll, messageId: pollMessage, closedBy: O }),
    chat(G, 'ChatRenamed', { title: 'renamed', renamedBy: O }),
    chat(G, 'MessageDeleted', { messageId: m2, deletedBy: B, original: { seq: 3, senderId: B, clientMsgId: `c-${m2}`, createdAt: at(3) } }),
    chat(G, 'ReactionRemoved', { messageId: m1, userId: B, emoji: '👍' }),
    chat(G, 'MemberRemoved', { userId: C, removedBy: O, reason: 'removed', newOwnerId: null }),
    sent(G, m3, A),
    chat(G, 'ReactionAdded', { messageId: m3, userId: B, emoji: '👀' }),
    chat(G, 'MemberErased', { userId: A, purged: true, newOwnerId: null }),
    chat(D, 'MessagesExpired', { upToSeq: 2, cutoff: at(100) }),
    sent(G, m4, B),
    ...tail.map((id) => sent(G, id, B)),
    chat(G, 'MemberAdded', { userId: C, role: 'admin', addedBy: O }),
    chat(G, 'MemberRemoved', { userId: O, removedBy: O, reason: 'left', newOwnerId: C }),
  ];

  it('covers every chat event type', () => {
    const types = new Set(events.map((e) => e.event.type));
    const all: ChatEvent['type'][] = [
      'ChatCreated', 'MessageSent', 'ChatRenamed', 'MemberAdded', 'MemberRemoved', 'MessageEdited', 'MessageDeleted',
      'ReactionAdded', 'ReactionRemoved', 'PollPosted', 'PollVoted', 'PollClosed', 'MessagesExpired', 'MemberErased',
    ];
    expect(all.filter((t) => !types.has(t))).toEqual([]);
  });

  it('is idempotent on its own, and its bulk path equals one by one', async () => {
    expect(await checkProjection(pool, { projection: chatsSql, tables: [...PROJECTION_TABLES, ...QUEUE_TABLES], events })).toEqual([]);
  });

  it('the harness catches a projection that is not idempotent', async () => {
    // The same SQL plus one statement that is not idempotent (a mark added at every apply).
    const broken = {
      async apply(event: ChatEvent, tx: Parameters<typeof chatsSql.apply>[1], position: Parameters<typeof chatsSql.apply>[2]) {
        await chatsSql.apply(event, tx, position);
        if (event.type === 'ReactionAdded') await tx.query(`UPDATE messages.chats SET title = title || '!' WHERE id = $1`, [event.chatId]);
      },
    };
    const found = await checkProjection(pool, { projection: broken, tables: [...PROJECTION_TABLES, ...QUEUE_TABLES], events });
    expect(found.filter((d) => d.startsWith('each event applied twice in a row: messages.chats')), found.join('\n')).toHaveLength(1);
  });

  it('queues side effects in its own tables: deleted content and what refers to it for the stream, released attachments', async () => {
    await rolledBack(pool, async (client) => {
      for (const { event, position } of events) await chatsSql.apply(event, client, position);
      const { rows: deletions } = await client.query<{ stream_seq: string }>('SELECT stream_seq FROM messages.stream_deletions ORDER BY 1');
      // m2's original event and its edit (m2 was deleted), and every reaction event on the messages
      // that went: m2, and m1 and m3 (A's, purged with A's account).
      const gone = new Set([m1, m2, m3]);
      const expected = events.filter(({ event: e }) =>
        (e.type === 'MessageSent' && e.data.messageId === m2) || e.type === 'MessageEdited' || ((e.type === 'ReactionAdded' || e.type === 'ReactionRemoved') && gone.has(e.data.messageId)),
      );
      expect(deletions.map((r) => Number(r.stream_seq))).toEqual(expected.map((e) => e.position.streamSeq));
      // Everyone a ChatCreated or MemberAdded added gets a "start following" notice, queued.
      const { rows: notices } = await client.query<{ chat_id: string; seq: number; user_ids: string[] }>('SELECT chat_id, seq, user_ids FROM messages.inbox_notices ORDER BY stream_seq');
      expect(notices).toEqual([
        { chat_id: G, seq: 1, user_ids: [O, A, B] },
        { chat_id: D, seq: 1, user_ids: [O, A] },
        ...events.filter((e) => e.event.type === 'MemberAdded').map((e) => ({ chat_id: G, seq: e.event.seq, user_ids: [C] })),
      ]);
      // What refers to the messages that stay (the poll's votes and close) stays, recorded.
      const { rows: kept } = await client.query<{ message_id: string }>('SELECT DISTINCT message_id FROM messages.dependent_events');
      expect(kept).toEqual([{ message_id: pollMessage }]);
      const { rows: released } = await client.query('SELECT attachment_id, reason FROM messages.released_attachments');
      expect(released).toEqual([{ attachment_id: attachment, reason: 'erased' }]);
    });
  });
});

describe('chats projection: a run of expiries (one statement on the bulk path)', () => {
  const [E, F] = [newId(), newId()];
  const seqs = new Map<string, number>();
  const chat = (chatId: string, type: ChatEvent['type'], data: object) => {
    const seq = (seqs.get(chatId) ?? 0) + 1;
    seqs.set(chatId, seq);
    return stored(parseChatEvent, `t.chat.${chatId}`, { type, chatId, seq, data });
  };
  const ids = Array.from({ length: 8 }, () => newId());
  const [shared, own, kept] = [newId(), newId(), newId()];
  const poll = newId();
  const sent = (chatId: string, messageId: string, attachmentIds: string[] = []) =>
    chat(chatId, 'MessageSent', { messageId, senderId: A, clientMsgId: `c-${messageId}`, body: `body of ${messageId}`, replyTo: null, attachmentIds });
  const created = (chatId: string) =>
    chat(chatId, 'ChatCreated', { type: 'group', title: 't', createdBy: O, members: [{ userId: O, role: 'owner' }, { userId: A, role: 'member' }, { userId: B, role: 'member' }] });
  const eCreated = created(E);
  const fCreated = created(F);
  const before = [
    eCreated,
    fCreated,
    // E: seqs 2-5; F: seqs 2-5. `shared` is on a message of each chat, `kept` also on one that stays.
    sent(E, ids[0]!, [shared]),
    sent(F, ids[1]!, [shared, own]),
    sent(E, ids[2]!),
    chat(F, 'PollPosted', { messageId: ids[3]!, senderId: O, clientMsgId: 'c-poll', pollId: poll, question: 'q?', options: [{ id: 'a', text: 'A' }], multiple: false }),
    sent(E, ids[4]!, [kept]),
    sent(F, ids[5]!),
    sent(E, ids[6]!),
    sent(F, ids[7]!, [kept]),
  ];
  // Older than the cutoff below (stream times are fixtureTime(streamSeq)): left to the pass's purge.
  const oldReaction = chat(E, 'ReactionAdded', { messageId: ids[0]!, userId: B, emoji: '👍' });
  const cutoff = at(oldReaction.position.streamSeq + 1);
  // From the cutoff on: queued for deletion from the stream.
  const newReaction = chat(F, 'ReactionAdded', { messageId: ids[1]!, userId: B, emoji: '🎉' });
  const vote = chat(F, 'PollVoted', { pollId: poll, messageId: ids[3]!, userId: B, optionIds: ['a'] });
  const edit = chat(E, 'MessageEdited', { messageId: ids[2]!, body: 'edited', editedBy: A });
  // The run: E in two chunks around F's first; each chat keeps its last message (seq 5).
  const run = [
    chat(E, 'MessagesExpired', { upToSeq: 2, cutoff }),
    chat(F, 'MessagesExpired', { upToSeq: 3, cutoff }),
    chat(E, 'MessagesExpired', { upToSeq: 4, cutoff }),
    chat(F, 'MessagesExpired', { upToSeq: 4, cutoff }),
  ];
  const later = newId();
  const events = [...before, oldReaction, newReaction, vote, edit, ...run, sent(E, later)];

  it('is idempotent on its own, and its bulk path equals one by one', async () => {
    // Without the reaction older than the cutoff: redelivered after its message expired, it is
    // queued for deletion from the stream at once (as any event on a message that is gone), which
    // a first delivery leaves to the pass's purge; harmless, but not the same rows.
    const spec = events.filter((e) => e !== oldReaction);
    expect(await checkProjection(pool, { projection: chatsSql, tables: [...PROJECTION_TABLES, ...QUEUE_TABLES], events: spec })).toEqual([]);
  });

  it('deletes each event\'s range with its children, queues what is newer than the cutoff, and releases an attachment when its last link goes', async () => {
    await rolledBack(pool, async (client) => {
      await chatsSql.applyMany(events, client);
      const { rows: left } = await client.query<{ id: string }>('SELECT id FROM messages.messages WHERE chat_id = ANY($1) ORDER BY stream_seq', [[E, F]]);
      expect(left.map((r) => r.id)).toEqual([ids[6], ids[7], later]);
      const count = async (table: string) => (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
      expect(await count('messages.reactions')).toBe(0);
      expect(await count('messages.polls')).toBe(0);
      expect(await count('messages.poll_votes')).toBe(0);
      expect(await count('messages.dependent_events')).toBe(0);
      const { rows: deletions } = await client.query<{ stream_seq: string; queued_at: Date }>('SELECT stream_seq, queued_at FROM messages.stream_deletions ORDER BY 1');
      expect(deletions.map((r) => Number(r.stream_seq))).toEqual([newReaction, vote, edit].map((e) => e.position.streamSeq));
      // Each with the time of the event that expired its message: F's first chunk, F's first, E's second.
      expect(deletions.map((r) => r.queued_at.toISOString())).toEqual([run[1]!, run[1]!, run[2]!].map((e) => e.event.meta.occurredAt));
      const { rows: released } = await client.query<{ attachment_id: string; queued_at: Date }>('SELECT attachment_id, queued_at FROM messages.released_attachments ORDER BY queued_at, attachment_id');
      // `own` and `shared` go with F's first chunk (E's first chunk took the other link of `shared`); `kept` stays.
      expect(released.map((r) => [r.attachment_id, r.queued_at.toISOString()])).toEqual([own, shared].sort().map((id) => [id, run[1]!.event.meta.occurredAt]));
    });
  });
});

describe('chats projection: a chat seq the store gave twice', () => {
  const chatId = newId();
  const [first, second, plain] = [newId(), newId(), newId()];
  const created = stored(parseChatEvent, `t.chat.${chatId}`, {
    type: 'ChatCreated',
    chatId,
    seq: 1,
    data: { type: 'group', title: 'g', createdBy: O, members: [{ userId: O, role: 'owner' }, { userId: A, role: 'member' }] },
  });
  const sentAt = (seq: number, messageId: string) =>
    stored(parseChatEvent, `t.chat.${chatId}`, { type: 'MessageSent', chatId, seq, data: { messageId, senderId: A, clientMsgId: `c-${messageId}`, body: 'b', replyTo: null, attachmentIds: [] } });
  // The store accepted two appends against the same expected head (NATS 2.9.10 after a frozen leader thawed).
  const events = [created, sentAt(2, first), sentAt(2, second), sentAt(3, plain)];

  it('reports the message that lost its seq on both paths, queues it for repair, and projects the rest; a redelivery is not a collision', async () => {
    const expected = [{ chatId, seq: 2, messageId: second, streamSeq: events[2]!.position.streamSeq, repair: true }];
    for (const path of ['one by one', 'bulk'] as const) {
      await rolledBack(pool, async (client) => {
        const found = path === 'bulk' ? await chatsSql.applyMany(events, client) : await sequential(events.map((e) => () => chatsSql.apply(e.event, client, e.position)));
        expect(found, path).toEqual(expected);
        const { rows } = await client.query<{ id: string }>('SELECT id FROM messages.messages WHERE chat_id = $1 ORDER BY seq', [chatId]);
        expect(rows.map((r) => r.id), path).toEqual([first, plain]);
        // Queued in the same transaction, once, for the seq-repair reactor.
        const queued = await client.query('SELECT message_id, chat_id, seq, stream_seq::int AS stream_seq FROM messages.seq_repairs');
        expect(queued.rows, path).toEqual([{ message_id: second, chat_id: chatId, seq: 2, stream_seq: events[2]!.position.streamSeq }]);
        // The same events again (a redelivery): the stored ones are recognised; the lost one is reported again.
        expect(await chatsSql.applyMany(events, client), path).toEqual(expected);
        expect((await client.query('SELECT 1 FROM messages.seq_repairs')).rowCount, path).toBe(1);
      });
    }
  });

  it('projects the repaired copy at its new seq, and a repeated copy of it as nothing', async () => {
    // The reactor's append, and a second one (its queue row outlived the first): later in the stream.
    const [repaired, again] = [sentAt(4, second), sentAt(5, second)];
    for (const path of ['one by one', 'bulk'] as const) {
      await rolledBack(pool, async (client) => {
        const all = [...events, repaired, again];
        const found = path === 'bulk' ? await chatsSql.applyMany(all, client) : await sequential(all.map((e) => () => chatsSql.apply(e.event, client, e.position)));
        // One by one, the lost copy is reported before its repair comes; in one bulk INSERT the repair
        // stores the message in the same statement, so there is nothing left to report.
        expect(found.map((c) => c.messageId), path).toEqual(path === 'bulk' ? [] : [second]);
        const { rows } = await client.query<{ id: string; seq: number }>('SELECT id, seq FROM messages.messages WHERE chat_id = $1 ORDER BY seq', [chatId]);
        expect(rows, path).toEqual([{ id: first, seq: 2 }, { id: plain, seq: 3 }, { id: second, seq: 4 }]);
      });
    }
  });

  it('queues a repaired copy that loses its seq again as a row of its own (the store\'s defect can hit the repair\'s append too)', async () => {
    // Found in the cluster fault scenario: the repair appended at the head while another writer did, both accepted.
    const repairedLost = sentAt(3, second);
    await rolledBack(pool, async (client) => {
      const found = await chatsSql.applyMany([...events, repairedLost], client);
      expect(found).toEqual([
        { chatId, seq: 2, messageId: second, streamSeq: events[2]!.position.streamSeq, repair: true },
        { chatId, seq: 3, messageId: second, streamSeq: repairedLost.position.streamSeq, repair: true },
      ]);
      const { rows } = await client.query('SELECT stream_seq::int AS stream_seq, message_id, seq FROM messages.seq_repairs ORDER BY stream_seq');
      expect(rows).toEqual([
        { stream_seq: events[2]!.position.streamSeq, message_id: second, seq: 2 },
        { stream_seq: repairedLost.position.streamSeq, message_id: second, seq: 3 },
      ]);
    });
  });

  it('treats a poll the same way: queued when it loses its seq, message and poll projected from the repaired copy', async () => {
    const pollMessage = newId();
    const pollAt = (seq: number) =>
      stored(parseChatEvent, `t.chat.${chatId}`, {
        type: 'PollPosted',
        chatId,
        seq,
        data: { messageId: pollMessage, senderId: A, clientMsgId: `c-${pollMessage}`, pollId: pollMessage, question: 'q?', options: [{ id: 'a', text: 'A' }], multiple: false },
      });
    const [lostPoll, repairedPoll] = [pollAt(2), pollAt(3)];
    await rolledBack(pool, async (client) => {
      const found = await sequential([created, sentAt(2, first), lostPoll].map((e) => () => chatsSql.apply(e.event, client, e.position)));
      expect(found).toEqual([{ chatId, seq: 2, messageId: pollMessage, streamSeq: lostPoll.position.streamSeq, repair: true }]);
      expect((await client.query('SELECT message_id FROM messages.seq_repairs')).rows).toEqual([{ message_id: pollMessage }]);
      expect((await client.query('SELECT 1 FROM messages.polls WHERE id = $1', [pollMessage])).rowCount).toBe(0);
      expect(await chatsSql.apply(repairedPoll.event, client, repairedPoll.position)).toEqual([]);
      expect((await client.query('SELECT seq, poll_id FROM messages.messages WHERE id = $1', [pollMessage])).rows).toEqual([{ seq: 3, poll_id: pollMessage }]);
      expect((await client.query('SELECT 1 FROM messages.polls WHERE id = $1', [pollMessage])).rowCount).toBe(1);
    });
  });

  it('does not queue a message whose clientMsgId the sender has in history already (a resend JetStream stored twice)', async () => {
    const resendId = newId();
    const resend = stored(parseChatEvent, `t.chat.${chatId}`, { type: 'MessageSent', chatId, seq: 2, data: { messageId: resendId, senderId: A, clientMsgId: `c-${first}`, body: 'b', replyTo: null, attachmentIds: [] } });
    await rolledBack(pool, async (client) => {
      const found = await chatsSql.applyMany([created, sentAt(2, first), resend], client);
      expect(found).toEqual([{ chatId, seq: 2, messageId: resendId, streamSeq: resend.position.streamSeq, repair: false }]);
      expect((await client.query('SELECT 1 FROM messages.seq_repairs')).rowCount).toBe(0);
    });
  });
});

/** Runs the steps one after another; their results, flattened. */
async function sequential<T>(steps: (() => Promise<T[]>)[]): Promise<T[]> {
  const out: T[] = [];
  for (const step of steps) out.push(...(await step()));
  return out;
}

describe('receipts projection', () => {
  const G = newId();
  const H = newId();
  const receipt = (type: ReceiptEvent['type'], subject: string, data: object) => stored(parseReceiptEvent, subject, { type, data });
  const events = [
    receipt('ReadPositionUpdated', `t.receipt.${G}.${A}`, { chatId: G, userId: A, seq: 3 }),
    receipt('ReadPositionUpdated', `t.receipt.${G}.${B}`, { chatId: G, userId: B, seq: 5 }),
    receipt('ReadPositionUpdated', `t.receipt.${G}.${A}`, { chatId: G, userId: A, seq: 7 }),
    receipt('ReadPositionUpdated', `t.receipt.${G}.${A}`, { chatId: G, userId: A, seq: 4 }),
    receipt('ReadPositionUpdated', `t.receipt.${H}.${A}`, { chatId: H, userId: A, seq: 2 }),
    receipt('ReadPositionUpdated', `t.receipt.${H}.${C}`, { chatId: H, userId: C, seq: 9 }),
    receipt('ReadPositionsErased', `t.receipt.erased.${A}`, { userId: A }),
    receipt('ReadPositionsExpired', 't.receipt.retention.all', { cutoff: at(6) }),
  ];

  it('covers every receipt event type, is idempotent on its own', async () => {
    expect(new Set(events.map((e) => e.event.type)).size).toBe(3);
    expect(await checkProjection(pool, { projection: receiptsProjection({ cache: createCache({ url: undefined, prefix: 'spec', log: createLogger({ service: 'spec', level: 'silent' }) }) }), tables: RECEIPTS_PROJECTION_TABLES, events })).toEqual([]);
  });
});

describe('attachments projection', () => {
  const [kept, swept, reused] = [newId(), newId(), newId()];
  const late = [newId(), newId()];
  const attachmentEvent = (type: AttachmentEvent['type'], id: string, data: object) => stored(parseAttachmentEvent, `t.attachment.${id}`, { type, data: { attachmentId: id, ...data } });
  const uploaded = (id: string) => attachmentEvent('AttachmentUploaded', id, { uploaderId: A, name: 'f.txt', size: 3, mime: 'text/plain' });
  const events = [
    uploaded(kept),
    uploaded(swept),
    uploaded(reused),
    attachmentEvent('AttachmentDeleted', swept, { reason: 'unreferenced' }),
    // A message uses it (a link of the chats projection's): the deletion must leave it alone.
    attachmentEvent('AttachmentDeleted', reused, { reason: 'deleted' }),
    // Runs of each type for the bulk path (one statement a run), with a repeated deletion in one.
    uploaded(late[0]!),
    uploaded(late[1]!),
    attachmentEvent('AttachmentDeleted', late[0]!, { reason: 'expired' }),
    attachmentEvent('AttachmentDeleted', swept, { reason: 'unreferenced' }),
    attachmentEvent('AttachmentDeleted', late[1]!, { reason: 'expired' }),
    attachmentEvent('AttachmentDeleted', late[0]!, { reason: 'expired' }),
  ];

  it('is idempotent on its own, and leaves an attachment a message uses', async () => {
    const given = async (tx: Parameters<typeof chatsSql.apply>[1]) => {
      const chatId = newId();
      const messageId = newId();
      await tx.query(`INSERT INTO messages.chats (id, type, title, created_by, created_at, last_seq, last_activity_at, stream_seq) VALUES ($1, 'group', 'g', $2, now(), 1, now(), 1)`, [chatId, A]);
      await tx.query(`INSERT INTO messages.messages (id, chat_id, seq, sender_id, client_msg_id, body, reply_to, created_at, stream_seq) VALUES ($1, $2, 2, $3, 'c', 'b', NULL, now(), 2)`, [messageId, chatId, A]);
      await tx.query('INSERT INTO messages.message_attachments (message_id, attachment_id, chat_id, position) VALUES ($1, $2, $3, 1)', [messageId, reused, chatId]);
    };
    const spec = { projection: attachmentsProjection(), tables: [...ATTACHMENTS_PROJECTION_TABLES, ...ATTACHMENTS_QUEUE_TABLES], events, given };
    expect(await checkProjection(pool, spec)).toEqual([]);

    await rolledBack(pool, async (client) => {
      await given(client);
      await spec.projection.applyMany!(events, client);
      const { rows } = await client.query<{ id: string }>('SELECT id FROM messages.attachments ORDER BY uploaded_at');
      expect(rows.map((r) => r.id)).toEqual([kept, reused]);
      // Each file queued once, with its first deletion's time.
      const { rows: files } = await client.query<{ attachment_id: string; queued_at: Date }>('SELECT attachment_id, queued_at FROM messages.file_deletions ORDER BY queued_at');
      const firstDeletion = (id: string) => events.find((e) => e.event.type === 'AttachmentDeleted' && e.event.data.attachmentId === id)!.event.meta.occurredAt;
      expect(files.map((f) => [f.attachment_id, f.queued_at.toISOString()])).toEqual([swept, late[0]!, late[1]!].map((id) => [id, firstDeletion(id)]));
    });
  });
});
