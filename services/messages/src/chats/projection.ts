import type { Position, Projection } from '@parley/projector-pg';
import type { Cache } from '@parley/cache';
import { RETENTION_PROJECTORS, type ChatEvent, type ChatSnapshot, type MessageSent, type MessagesExpired } from '@parley/contracts';
import type { PoolClient } from '@parley/pg';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import { chatListKey } from './cache-keys.js';

export const CHATS_PROJECTOR = RETENTION_PROJECTORS.chats;
export const CHECKPOINT_TABLE = 'messages.projection_checkpoints';
/** Emptied and refilled by `npm run rebuild -- messages` (the checkpoint row is reset by the projector). */
export const PROJECTION_TABLES = [
  'messages.message_attachments',
  'messages.poll_votes',
  'messages.polls',
  'messages.reactions',
  'messages.messages',
  'messages.direct_chats',
  'messages.chat_members',
  'messages.chats',
  'messages.dependent_events',
];
/**
 * The projection's queues of side effects (reactors drain them). Not emptied by a rebuild: a
 * replay does not queue again what was queued before (the deleted content is gone from the stream).
 */
export const QUEUE_TABLES = ['messages.stream_deletions', 'messages.released_attachments', 'messages.inbox_notices', 'messages.seq_repairs'];

const INSERT_MESSAGES = `INSERT INTO messages.messages (id, chat_id, seq, sender_id, client_msg_id, body, reply_to, created_at, stream_seq)
  SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::uuid[], $5::text[], $6::text[], $7::uuid[], $8::timestamptz[], $9::bigint[])
  ON CONFLICT DO NOTHING RETURNING 1`;
const UPDATE_SUMMARIES = (first: number) =>
  `UPDATE messages.chats c SET last_seq = GREATEST(c.last_seq, v.seq), last_activity_at = GREATEST(c.last_activity_at, v.at)
     FROM unnest($${first}::uuid[], $${first + 1}::int[], $${first + 2}::timestamptz[]) AS v(id, seq, at) WHERE c.id = v.id`;

/**
 * The bulk path's statements, named: Postgres parses and plans a named statement once per
 * connection instead of at every batch (parsing and planning were about a fifth of the
 * projection's Postgres CPU in a profile at 2,000 msg/s).
 */
const BULK = {
  // Both answer how many rows they inserted: fewer than the run means redeliveries, or seq collisions.
  insert: { name: 'chats.insert-messages', text: `WITH inserted AS (${INSERT_MESSAGES}) SELECT count(*)::int AS n FROM inserted` },
  insertAndSummaries: {
    name: 'chats.insert-messages-summaries',
    // A data-modifying CTE runs whether or not anything reads it: the summaries need no RETURNING.
    text: `WITH inserted AS (${INSERT_MESSAGES}), summaries AS (${UPDATE_SUMMARIES(10)}) SELECT count(*)::int AS n FROM inserted`,
  },
  summaries: { name: 'chats.summaries', text: UPDATE_SUMMARIES(1) },
  membersOf: { name: 'chats.members-of', text: 'SELECT DISTINCT user_id FROM messages.chat_members WHERE chat_id = ANY($1::uuid[])' },
};

/** Events that move a chat up the chat list (what people perceive as activity). */
const ACTIVITY = new Set<ChatEvent['type']>(['ChatCreated', 'MessageSent', 'PollPosted', 'MemberAdded']);

/**
 * The time an event moves its chat's last activity to, or null. A MessageDeleted counts with its
 * message's creation time: live that changes nothing (the MessageSent or PollPosted already moved
 * it there), but a replay has no MessageSent any more (its content left the stream), and without
 * this a chat whose newest message was deleted fell back to an older time on rebuild.
 */
function activityAt(event: ChatEvent): string | null {
  if (ACTIVITY.has(event.type)) return event.meta.occurredAt;
  if (event.type === 'MessageDeleted' && event.data.original) return event.data.original.createdAt;
  return null;
}

/**
 * Projects every chat event into the chats, members, messages, reactions and polls tables, and
 * queues the side effects a deletion needs (content to remove from the stream, attachments let go
 * of) in its own queue tables, which reactors drain (src/reactors/). Only SQL: idempotent on its own,
 * without the checkpoint (inserts are keyed by ids inside the events, updates set what the event
 * says, counters move with GREATEST), and the bulk path equals one by one
 * (projection.spec.test.ts applies each event twice, redelivers every suffix and compares).
 */
export const chatsSql = {
  /** Applies one event; returns the message it could not store because its seq was taken (see SeqCollision). */
  async apply(event: ChatEvent, tx: PoolClient, position: Position): Promise<SeqCollision[]> {
    const collision = await applyEvent(event, tx, position);
    await tx.query(
      `UPDATE messages.chats SET last_seq = GREATEST(last_seq, $2),
              last_activity_at = GREATEST(last_activity_at, $3::timestamptz)
        WHERE id = $1`,
      [event.chatId, event.seq, activityAt(event)],
    );
    return collision ? [collision] : [];
  },
  /**
   * A chat whose old events retention purged (issue 18), as its ChatSnapshot says: for a rebuild,
   * before the chat's remaining events replay onto it. Only a chat the projection does not have is
   * made (a live projection is already past the snapshot: applying it would undo newer changes).
   */
  async applySnapshot(snapshot: ChatSnapshot, streamSeq: number, tx: PoolClient): Promise<void> {
    const d = snapshot.data;
    const { rowCount } = await tx.query(
      `INSERT INTO messages.chats (id, type, title, created_by, created_at, last_seq, last_activity_at, stream_seq)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
      [d.chatId, d.type, d.title, d.createdBy, d.createdAt, d.seq, d.lastActivityAt, streamSeq],
    );
    if (rowCount === 0) return;
    await tx.query(
      `INSERT INTO messages.chat_members (chat_id, user_id, role, joined_seq)
       SELECT $1, m.user_id, m.role, m.joined_seq FROM unnest($2::uuid[], $3::text[], $4::int[]) AS m(user_id, role, joined_seq)`,
      [d.chatId, d.members.map((m) => m.userId), d.members.map((m) => m.role), d.members.map((m) => m.joinedSeq)],
    );
    // The pair stays a pair while both are members: one of them erased (a MemberErased the
    // snapshot folded in) leaves no pair, as MemberErased itself removes it.
    if (d.pair && d.pair.every((userId) => d.members.some((m) => m.userId === userId))) {
      const [a, b] = [...d.pair].sort();
      await tx.query('INSERT INTO messages.direct_chats (user_a, user_b, chat_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [a, b, d.chatId]);
    }
  },
  /**
   * The bulk path (a burst of events in one transaction): runs of plain messages become one
   * multi-row INSERT, runs of MessagesExpired one statement, and each touched chat's summary one
   * UPDATE, instead of two statements per event. Other events go through applyEvent in order, so
   * the effect equals apply() one by one.
   */
  async applyMany(items: { event: ChatEvent; position: Position }[], tx: PoolClient): Promise<SeqCollision[]> {
    const collisions: SeqCollision[] = [];
    const summaries = new Map<string, { seq: number; at: string | null }>();
    for (const { event } of items) {
      const s = summaries.get(event.chatId) ?? { seq: 0, at: null };
      s.seq = Math.max(s.seq, event.seq);
      const at = activityAt(event);
      if (at !== null && (s.at === null || at > s.at)) s.at = at;
      summaries.set(event.chatId, s);
    }
    const chats = [...summaries.entries()];
    const summaryParams = [chats.map(([id]) => id), chats.map(([, s]) => s.seq), chats.map(([, s]) => s.at)];
    let run: { event: MessageSent; position: Position }[] = [];
    /** After a run's INSERT stored `inserted` rows: the run's messages that are not stored (collisions). */
    const checkRun = async (items: { event: MessageSent; position: Position }[], inserted: number) => {
      if (inserted < items.length) collisions.push(...(await unstored(tx, items.map((x) => ({ event: x.event, streamSeq: x.position.streamSeq })))));
    };
    /** The run's INSERT parameters, one array per column; empties the run. */
    const takeRun = (): unknown[] => {
      const col = <T>(f: (x: { event: MessageSent; position: Position }) => T) => run.map(f);
      const params = [
        col((x) => x.event.data.messageId),
        col((x) => x.event.chatId),
        col((x) => x.event.seq),
        col((x) => x.event.data.senderId),
        col((x) => x.event.data.clientMsgId),
        col((x) => x.event.data.body),
        col((x) => x.event.data.replyTo),
        col((x) => x.event.meta.occurredAt),
        col((x) => x.position.streamSeq),
      ];
      run = [];
      return params;
    };
    /** A run of consecutive MessagesExpired: one statement (expireMessages says why). */
    let expiries: MessagesExpired[] = [];
    const flushExpiries = async () => {
      if (expiries.length > 0) await expireMessages(tx, expiries);
      expiries = [];
    };
    for (const { event, position } of items) {
      if (event.type === 'MessagesExpired') {
        if (run.length > 0) {
          const items = run;
          await checkRun(items, (await tx.query<{ n: number }>({ ...BULK.insert, values: takeRun() })).rows[0]!.n);
        }
        expiries.push(event);
      } else if (event.type === 'MessageSent' && event.data.attachmentIds.length === 0) {
        await flushExpiries();
        run.push({ event, position });
      } else {
        await flushExpiries();
        if (run.length > 0) {
          const items = run;
          await checkRun(items, (await tx.query<{ n: number }>({ ...BULK.insert, values: takeRun() })).rows[0]!.n);
        }
        const collision = await applyEvent(event, tx, position);
        if (collision) collisions.push(collision);
      }
    }
    await flushExpiries();
    // The run that ends the batch (the usual case: a burst of messages) carries the summaries'
    // UPDATE in the same statement, as a data-modifying CTE: the whole burst is one round trip.
    if (run.length > 0) {
      const items = run;
      await checkRun(items, (await tx.query<{ n: number }>({ ...BULK.insertAndSummaries, values: [...takeRun(), ...summaryParams] })).rows[0]!.n);
    } else await tx.query({ ...BULK.summaries, values: summaryParams });
    return collisions;
  },
};

/** The chats projection's queues, each drained by its reactor (reactors/). */
export type ChatsQueue = 'streamContent' | 'attachmentRelease' | 'inboxNotice' | 'seqRepair';

/**
 * Which queues an event can fill, so that a commit kicks only those reactors (each drain is a
 * transaction; the reactors' own timers catch the rare rest, such as a reaction to a message gone
 * meanwhile, which goes to the stream-content queue at once).
 */
const QUEUES_OF: Partial<Record<ChatEvent['type'], ChatsQueue[]>> = {
  MessageDeleted: ['streamContent', 'attachmentRelease'],
  MessagesExpired: ['streamContent', 'attachmentRelease'],
  MemberErased: ['streamContent', 'attachmentRelease'],
  ChatCreated: ['inboxNotice'],
  MemberAdded: ['inboxNotice'],
};

/**
 * The chats projector's projection: the SQL above, then, after commit, the counters, a kick for
 * the reactors when something was queued (they also drain on their own timer, so a lost kick
 * only delays), and the chat lists of everyone in the touched chats dropped from Redis.
 */
export function chatsProjection(deps: {
  cache: Cache;
  metrics: Metrics;
  log: Logger;
  pool: { query: PoolClient['query'] };
  /** Told after a commit that queued side effects (the reactors drain the queues). */
  onQueued?: (queues: Set<ChatsQueue>) => void;
}): Projection<ChatEvent> {
  /** A message the store lost its place for: an error with its ids (never its body) and a counter that alerts. */
  /** Set when a transaction queued a repair: its commit kicks the seq-repair reactor (a rolled-back one only kicks in vain). */
  let repairsQueued = false;
  const report = (collisions: SeqCollision[]): void => {
    for (const c of collisions) {
      deps.log.error(
        { ...c },
        c.repair
          ? 'chat event stored with a seq the chat already had: the message is queued to be appended again under a new seq (a NATS defect, see docs/reliability.md)'
          : 'chat event stored with a seq the chat already had: its clientMsgId is in history as another message, not repaired (a NATS defect, see docs/reliability.md)',
      );
    }
    if (collisions.length > 0) deps.metrics.chatSeqCollisions.inc(collisions.length);
    if (collisions.some((c) => c.repair)) repairsQueued = true;
  };
  return {
    name: CHATS_PROJECTOR,
    apply: async (event, tx, position) => report(await chatsSql.apply(event, tx, position)),
    applyMany: async (items, tx) => report(await chatsSql.applyMany(items, tx)),
    async afterCommit(events) {
      deps.metrics.messagesTotal.inc(events.filter((e) => e.type === 'MessageSent' || e.type === 'PollPosted').length);
      const queued = new Set(events.flatMap((e) => QUEUES_OF[e.type] ?? []));
      if (repairsQueued) queued.add('seqRepair');
      repairsQueued = false;
      if (queued.size > 0) deps.onQueued?.(queued);
      await dropChatLists(deps, events);
    },
  };
}

/**
 * Deletes the cached chat lists (`chats:<userId>`) that `events` changed: everyone in a touched
 * chat (last message, unread count, title) and whoever an event took out. Run by the projection
 * after its commit, and again by the write paths once the checkpoint has passed their event
 * (write.ts): the projection's step runs after the checkpoint a route waits for, and a crash
 * between the commit and it loses it for good, so without the second delete the writer's next
 * read could be served the list from before its own change until REDIS_CHATS_TTL.
 */
export async function dropChatLists(deps: { cache: Cache; pool: { query: PoolClient['query'] } }, events: readonly ChatEvent[]): Promise<void> {
  // Without a cache there is nothing to invalidate: skip the member lookup on this hot path.
  if (!deps.cache.enabled || events.length === 0) return;
  const chatIds = [...new Set(events.map((e) => e.chatId))];
  const removed = events.flatMap((e) => (e.type === 'MemberRemoved' || e.type === 'MemberErased' ? [e.data.userId] : []));
  const { rows } = await deps.pool.query<{ user_id: string }>({ ...BULK.membersOf, values: [chatIds] });
  // delMany, not del(...keys): a big enough group's keys exceed what one call's arguments can carry.
  await deps.cache.delMany([...rows.map((r) => r.user_id), ...removed].map(chatListKey));
}

/**
 * Drops the given messages' attachment links and queues the attachments no other message uses
 * any more for deletion (messages.released_attachments; the release reactor turns them into
 * AttachmentDeleted events for the attachments projection, which owns their records).
 * `messageFilter` selects the messages (a SQL condition on alias `m` over the parameters).
 */
async function dropAttachments(tx: PoolClient, event: ChatEvent, reason: 'deleted' | 'erased', messageFilter: string, params: unknown[]): Promise<void> {
  const { rows } = await tx.query<{ attachment_id: string }>(
    `DELETE FROM messages.message_attachments ma USING messages.messages m
      WHERE ma.message_id = m.id AND ${messageFilter} RETURNING ma.attachment_id`,
    params,
  );
  const ids = [...new Set(rows.map((r) => r.attachment_id))];
  if (ids.length === 0) return;
  await tx.query(
    `INSERT INTO messages.released_attachments (attachment_id, reason, queued_at)
     SELECT a.id, $2, $3 FROM unnest($1::uuid[]) AS a(id)
      WHERE NOT EXISTS (SELECT 1 FROM messages.message_attachments o WHERE o.attachment_id = a.id)
     ON CONFLICT DO NOTHING`,
    [ids, reason, event.meta.occurredAt],
  );
}

/**
 * The CTEs that delete the reactions and polls (their votes by cascade) of the messages a `gone`
 * CTE deleted (deleteMessages: one user's messages in one chat); `ids` holds their ids. As an
 * array: "= ANY" makes each child table use its index on message_id, where a join with the CTE
 * was planned as a hash join over the whole child table, for every event.
 */
const CHILDREN_OF_GONE = `ids AS (SELECT coalesce(array_agg(id), '{}') AS a FROM gone),
          reactions AS (DELETE FROM messages.reactions r WHERE r.message_id = ANY((SELECT a FROM ids)::uuid[])),
          polls AS (DELETE FROM messages.polls p WHERE p.message_id = ANY((SELECT a FROM ids)::uuid[]))`;

/**
 * A run of MessagesExpired events in one statement (a pass appends one per chat and chunk, and the
 * projector gets them in batches of up to 200): the messages go with their reactions, polls (votes
 * by their cascade), links and dependent-event records; their dependent events and edits from the
 * event's `cutoff` on are queued for deletion from the stream one by one (the pass purges the
 * stream below its cutoff itself: 110,000 single deletes at a million expired messages otherwise;
 * by time, not stream sequence, because a restore renumbers the stream), and their attachments
 * that no other message uses are queued for release. The same effects as queueDependents,
 * dropAttachments and deleteMessages, in one statement (every part sees the rows as they were
 * before it, hence the links of the gone messages left out of "no other message uses it").
 *
 * One statement for the run, not one per event: the child tables are then joined once with all
 * the gone messages (a hash join reading each child table once) instead of probed by index for
 * each message of each event; a million expired messages with their children: 2.9 s against 5.8 s
 * (docs/performance.md#retention). Each event keeps its own effects: it deletes the seqs above the
 * previous event of its chat in the run (`after`), with its own time and cutoff, and a released
 * attachment carries the time of the event that removed its last link, as one by one.
 */
async function expireMessages(tx: PoolClient, events: MessagesExpired[]): Promise<void> {
  const after = new Map<string, number>();
  const ranges = events.map((e) => {
    const from = after.get(e.chatId) ?? 0;
    after.set(e.chatId, Math.max(from, e.data.upToSeq));
    return { chatId: e.chatId, after: from, upTo: e.data.upToSeq, at: e.meta.occurredAt, cutoff: e.data.cutoff };
  });
  await tx.query(
    `WITH run AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::timestamptz[], $5::timestamptz[]) WITH ORDINALITY AS v(chat_id, after, up_to, at, cutoff, ord)),
          gone AS (DELETE FROM messages.messages m USING run WHERE m.chat_id = run.chat_id AND m.seq > run.after AND m.seq <= run.up_to
                   RETURNING m.id, m.edit_stream_seqs, m.edited_at, m.stream_seq, m.deleted_at, run.at, run.cutoff, run.ord),
          reactions AS (DELETE FROM messages.reactions r USING gone WHERE r.message_id = gone.id),
          polls AS (DELETE FROM messages.polls p USING gone WHERE p.message_id = gone.id),
          dependents AS (DELETE FROM messages.dependent_events d USING gone WHERE d.message_id = gone.id RETURNING d.stream_seq, d.occurred_at, gone.at, gone.cutoff),
          -- A message last edited before the cutoff has every edit before it. A tombstone's row
          -- stems from its MessageDeleted (stream_seq), which names the sender, time and
          -- clientMsgId of the expired message: newer than the cutoff, it goes one by one too.
          content AS (
            INSERT INTO messages.stream_deletions (stream_seq, queued_at)
            SELECT stream_seq, at FROM dependents WHERE occurred_at IS NULL OR occurred_at >= cutoff
            UNION SELECT unnest(edit_stream_seqs), at FROM gone WHERE edited_at >= cutoff
            UNION SELECT stream_seq, at FROM gone WHERE deleted_at >= cutoff
            ON CONFLICT DO NOTHING),
          links AS (DELETE FROM messages.message_attachments ma USING gone WHERE ma.message_id = gone.id RETURNING ma.message_id, ma.attachment_id, gone.at, gone.ord)
     INSERT INTO messages.released_attachments (attachment_id, reason, queued_at)
     SELECT l.attachment_id, 'expired', (array_agg(l.at ORDER BY l.ord DESC))[1] FROM links l
      WHERE NOT EXISTS (SELECT 1 FROM messages.message_attachments o
                         WHERE o.attachment_id = l.attachment_id
                           AND NOT EXISTS (SELECT 1 FROM links x WHERE x.message_id = o.message_id AND x.attachment_id = o.attachment_id))
      GROUP BY l.attachment_id
     ON CONFLICT DO NOTHING`,
    [ranges.map((r) => r.chatId), ranges.map((r) => r.after), ranges.map((r) => r.upTo), ranges.map((r) => r.at), ranges.map((r) => r.cutoff)],
  );
}

/**
 * Deletes the selected messages (`messageFilter`: a SQL condition on alias `m`) with their
 * reactions and polls (the polls' votes follow by their cascade), in one statement. Set-based on
 * purpose: reactions, polls and attachment links have no foreign key to messages (migration 0010),
 * because a cascade costs a query per child table per deleted message, most of a million-message
 * expiry's time. This projection is those tables' only writer, and this and MessageDeleted are the
 * only places a message loses its children; the links go first (dropAttachments), because whether
 * an attachment is released depends on the links that remain.
 */
async function deleteMessages(tx: PoolClient, messageFilter: string, params: unknown[]): Promise<void> {
  await tx.query(
    `WITH gone AS (DELETE FROM messages.messages m WHERE ${messageFilter} RETURNING m.id),
          ${CHILDREN_OF_GONE}
     SELECT 1`,
    params,
  );
}

/**
 * A message event the store accepted with a chat seq another event of the chat already has. The
 * writer appends only with the chat's expected last subject sequence, so only the store can cause
 * this (NATS 2.9.10 did, after a frozen stream leader thawed: docs/reliability.md). The message is
 * not projected at that seq (it belongs to the other); the projection reports it, loudly, and
 * queues it in the same transaction for the seq-repair reactor, which appends it again under a new
 * seq (reactors/seq-repair.ts).
 */
export interface SeqCollision {
  chatId: string;
  seq: number;
  messageId: string;
  /** Where the store holds the lost copy in the chats stream. */
  streamSeq: number;
  /** Queued for repair (messages.seq_repairs); false when the sender's clientMsgId is in history already. */
  repair: boolean;
}

/**
 * Queues for deletion from the stream the events that refer to the selected messages (reactions,
 * votes, a poll's close: messages.dependent_events) and, with `edits`, their edits, so that they
 * leave the stream with the messages. `messageFilter` is a SQL condition on alias `m`.
 */
async function queueDependents(tx: PoolClient, event: ChatEvent, messageFilter: string, params: unknown[], options: { edits?: boolean } = {}): Promise<void> {
  const at = `$${params.length + 1}`;
  await tx.query(
    `WITH gone AS (DELETE FROM messages.dependent_events d WHERE d.message_id IN (SELECT m.id FROM messages.messages m WHERE ${messageFilter}) RETURNING d.stream_seq)
     INSERT INTO messages.stream_deletions (stream_seq, queued_at) SELECT stream_seq, ${at} FROM gone ON CONFLICT DO NOTHING`,
    [...params, event.meta.occurredAt],
  );
  if (!options.edits) return;
  await tx.query(
    `INSERT INTO messages.stream_deletions (stream_seq, queued_at)
     SELECT unnest(m.edit_stream_seqs), ${at} FROM messages.messages m WHERE ${messageFilter} ON CONFLICT DO NOTHING`,
    [...params, event.meta.occurredAt],
  );
}

/** Queues the "start following this chat" notice for users the event adds (reactors/inbox.ts). */
async function queueInboxNotice(tx: PoolClient, event: ChatEvent, position: Position, userIds: string[]): Promise<void> {
  await tx.query(
    'INSERT INTO messages.inbox_notices (stream_seq, chat_id, seq, user_ids, queued_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
    [position.streamSeq, event.chatId, event.seq, userIds, event.meta.occurredAt],
  );
}

/**
 * Records an event that refers to a message, to leave the stream when the message does; if the
 * message is gone already (deleted, expired, erased: a race, or a redelivery), it leaves now.
 * `userId` is whoever chose it (a reaction or vote, also one taken back), so that an erasure with a
 * purge finds the chat after they left it with nothing of theirs in its rows (erasure.ts, chatsOf).
 */
async function recordDependent(tx: PoolClient, event: ChatEvent, messageId: string, position: Position, userId: string | null): Promise<void> {
  await tx.query(
    `WITH live AS (SELECT EXISTS (SELECT 1 FROM messages.messages WHERE id = $2 AND deleted_at IS NULL) AS yes),
          kept AS (INSERT INTO messages.dependent_events (stream_seq, message_id, occurred_at, user_id) SELECT $1, $2, $3, $4 FROM live WHERE yes ON CONFLICT DO NOTHING RETURNING 1)
     INSERT INTO messages.stream_deletions (stream_seq, queued_at) SELECT $1, $3 FROM live WHERE NOT yes ON CONFLICT DO NOTHING`,
    [position.streamSeq, messageId, event.meta.occurredAt, userId],
  );
}

/**
 * Of these message events, the ones not stored: neither by this run nor by an earlier delivery.
 * Each is queued for repair (messages.seq_repairs, reactors/seq-repair.ts), unless the sender's
 * clientMsgId is stored already as another message of the chat: then the send is in history (a
 * retry that JetStream's duplicate window did not catch), and appending it again would only lose
 * its seq once more.
 */
async function unstored(tx: PoolClient, items: { event: { chatId: string; seq: number; meta: { occurredAt: string }; data: { messageId: string; senderId: string; clientMsgId: string } }; streamSeq: number }[]): Promise<SeqCollision[]> {
  const { rows } = await tx.query<{ id: string }>('SELECT id FROM messages.messages WHERE id = ANY($1::uuid[])', [items.map((x) => x.event.data.messageId)]);
  const stored = new Set(rows.map((r) => r.id));
  const lost = items.filter((x) => !stored.has(x.event.data.messageId));
  if (lost.length === 0) return [];
  const { rows: sent } = await tx.query<{ chat_id: string; sender_id: string; client_msg_id: string }>(
    `SELECT m.chat_id, m.sender_id, m.client_msg_id FROM messages.messages m
       JOIN unnest($1::uuid[], $2::uuid[], $3::text[]) AS k(chat_id, sender_id, client_msg_id)
         ON m.chat_id = k.chat_id AND m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id`,
    [lost.map((x) => x.event.chatId), lost.map((x) => x.event.data.senderId), lost.map((x) => x.event.data.clientMsgId)],
  );
  const resent = new Set(sent.map((r) => `${r.chat_id}:${r.sender_id}:${r.client_msg_id}`));
  const collisions = lost.map(({ event, streamSeq }) => ({
    chatId: event.chatId,
    seq: event.seq,
    messageId: event.data.messageId,
    streamSeq,
    repair: !resent.has(`${event.chatId}:${event.data.senderId}:${event.data.clientMsgId}`),
  }));
  const repairs = collisions.filter((c) => c.repair);
  if (repairs.length > 0) {
    // Stamped with the lost event's time, like every queue: a projection is a function of its events.
    await tx.query(
      `INSERT INTO messages.seq_repairs (stream_seq, message_id, chat_id, seq, queued_at)
       SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::int[], $5::timestamptz[]) ON CONFLICT DO NOTHING`,
      [repairs.map((c) => c.streamSeq), repairs.map((c) => c.messageId), repairs.map((c) => c.chatId), repairs.map((c) => c.seq), repairs.map((c) => lost.find((x) => x.streamSeq === c.streamSeq)!.event.meta.occurredAt)],
    );
  }
  return collisions;
}

async function applyEvent(event: ChatEvent, tx: PoolClient, position: Position): Promise<SeqCollision | undefined> {
  const at = event.meta.occurredAt;
  switch (event.type) {
    case 'ChatCreated': {
      const d = event.data;
      await tx.query(
        `INSERT INTO messages.chats (id, type, title, created_by, created_at, last_seq, last_activity_at, stream_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $5, $7) ON CONFLICT (id) DO NOTHING`,
        [event.chatId, d.type, d.title, d.createdBy, at, event.seq, position.streamSeq],
      );
      await tx.query(
        `INSERT INTO messages.chat_members (chat_id, user_id, role, joined_seq)
         SELECT $1, m.user_id, m.role, $4 FROM unnest($2::uuid[], $3::text[]) AS m(user_id, role)
         ON CONFLICT DO NOTHING`,
        [event.chatId, d.members.map((m) => m.userId), d.members.map((m) => m.role), event.seq],
      );
      await queueInboxNotice(tx, event, position, d.members.map((m) => m.userId));
      if (d.type === 'direct' && d.members.length === 2) {
        const [a, b] = d.members.map((m) => m.userId).sort();
        await tx.query('INSERT INTO messages.direct_chats (user_a, user_b, chat_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [a, b, event.chatId]);
      }
      return;
    }
    case 'MessageSent': {
      const d = event.data;
      const { rowCount } = await tx.query(
        `INSERT INTO messages.messages (id, chat_id, seq, sender_id, client_msg_id, body, reply_to, created_at, stream_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
        [d.messageId, event.chatId, event.seq, d.senderId, d.clientMsgId, d.body, d.replyTo, at, position.streamSeq],
      );
      if (rowCount === 0) {
        const [collision] = await unstored(tx, [{ event, streamSeq: position.streamSeq }]);
        if (collision) return collision;
      }
      if (d.attachmentIds.length > 0) {
        await tx.query(
          `INSERT INTO messages.message_attachments (message_id, attachment_id, chat_id, position)
           SELECT $1, a.id, $3, a.position FROM unnest($2::uuid[]) WITH ORDINALITY AS a(id, position)
           ON CONFLICT DO NOTHING`,
          [d.messageId, d.attachmentIds, event.chatId],
        );
      }
      return;
    }
    case 'PollPosted': {
      const d = event.data;
      const { rowCount } = await tx.query(
        `INSERT INTO messages.messages (id, chat_id, seq, sender_id, client_msg_id, body, reply_to, created_at, stream_seq, poll_id)
         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9) ON CONFLICT DO NOTHING`,
        [d.messageId, event.chatId, event.seq, d.senderId, d.clientMsgId, d.question, at, position.streamSeq, d.pollId],
      );
      if (rowCount === 0) {
        const [collision] = await unstored(tx, [{ event, streamSeq: position.streamSeq }]);
        if (collision) return collision;
      }
      await tx.query(
        `INSERT INTO messages.polls (id, message_id, chat_id, created_by, question, options, multiple)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
        [d.pollId, d.messageId, event.chatId, d.senderId, d.question, JSON.stringify(d.options), d.multiple],
      );
      return;
    }
    case 'ChatRenamed':
      await tx.query('UPDATE messages.chats SET title = $2 WHERE id = $1', [event.chatId, event.data.title]);
      return;
    case 'MemberAdded':
      await queueInboxNotice(tx, event, position, [event.data.userId]);
      await tx.query(
        `INSERT INTO messages.chat_members (chat_id, user_id, role, joined_seq) VALUES ($1, $2, $3, $4)
         ON CONFLICT (chat_id, user_id) DO UPDATE SET role = EXCLUDED.role, joined_seq = EXCLUDED.joined_seq`,
        [event.chatId, event.data.userId, event.data.role, event.seq],
      );
      return;
    case 'MemberRemoved':
      await tx.query('DELETE FROM messages.chat_members WHERE chat_id = $1 AND user_id = $2', [event.chatId, event.data.userId]);
      if (event.data.newOwnerId) {
        await tx.query(`UPDATE messages.chat_members SET role = 'owner' WHERE chat_id = $1 AND user_id = $2`, [event.chatId, event.data.newOwnerId]);
      }
      return;
    case 'MessageEdited': {
      const { rowCount } = await tx.query(
        `UPDATE messages.messages SET body = $3, edited_at = $4, edit_stream_seqs = edit_stream_seqs || $5::bigint
          WHERE id = $1 AND chat_id = $2 AND deleted_at IS NULL`,
        [event.data.messageId, event.chatId, event.data.body, at, position.streamSeq],
      );
      // The message is gone already (deleted or expired after the edit was decided on a state
      // without that): the edit's text leaves the stream now, as a reaction to a gone message does
      // (recordDependent). Before, it stayed there for the stream's life, and resume replayed it.
      if (rowCount === 0) {
        await tx.query('INSERT INTO messages.stream_deletions (stream_seq, queued_at) VALUES ($1, $2) ON CONFLICT DO NOTHING', [position.streamSeq, at]);
      }
      return;
    }
    case 'MessageDeleted': {
      // The tombstone keeps the row (seq, sender, time) so history has no holes; the content goes,
      // here and (after commit) from the stream: the original event and every edit.
      const { rows } = await tx.query<{ stream_seq: string; edit_stream_seqs: string[] }>(
        // reply_to and edited_at go too: a replay makes the row from the tombstone alone (its
        // MessageSent and edits are gone from the stream), which knows neither, and live and
        // rebuilt rows must agree (e2e/rebuild.test.ts).
        `UPDATE messages.messages m SET body = '', deleted_at = $3, poll_id = NULL, edit_stream_seqs = '{}', stream_seq = $4,
                reply_to = NULL, edited_at = NULL
           FROM (SELECT id, stream_seq, edit_stream_seqs FROM messages.messages WHERE id = $1 AND chat_id = $2 FOR UPDATE) old
          WHERE m.id = old.id AND m.deleted_at IS NULL
          RETURNING old.stream_seq, old.edit_stream_seqs`,
        // The row now stems from the tombstone (the original event leaves the stream), as after a replay.
        [event.data.messageId, event.chatId, at, position.streamSeq],
      );
      // Queued in this transaction (reactors/stream-content.ts drains it): a crash after the commit cannot
      // leave the body in the stream. Stamped with the event's time: a projection is a function of its events.
      const content = rows.flatMap((r) => [Number(r.stream_seq), ...r.edit_stream_seqs.map(Number)]);
      if (content.length > 0) await tx.query('INSERT INTO messages.stream_deletions (stream_seq, queued_at) SELECT unnest($1::bigint[]), $2 ON CONFLICT DO NOTHING', [content, at]);
      await queueDependents(tx, event, 'm.id = $1', [event.data.messageId]);
      const original = event.data.original;
      if (rows.length === 0 && original) {
        // A replay: the original event is gone from the stream, so the tombstone makes the row.
        await tx.query(
          `INSERT INTO messages.messages (id, chat_id, seq, sender_id, client_msg_id, body, reply_to, created_at, deleted_at, stream_seq)
           VALUES ($1, $2, $3, $4, $5, '', NULL, $6, $7, $8) ON CONFLICT DO NOTHING`,
          [event.data.messageId, event.chatId, original.seq, original.senderId, original.clientMsgId, original.createdAt, at, position.streamSeq],
        );
      }
      await tx.query('DELETE FROM messages.reactions WHERE message_id = $1', [event.data.messageId]);
      await tx.query('DELETE FROM messages.polls WHERE message_id = $1', [event.data.messageId]);
      // Its attachments go too, unless another live message still carries them.
      await dropAttachments(tx, event, 'deleted', 'm.id = $1', [event.data.messageId]);
      return;
    }
    case 'ReactionAdded':
      await tx.query(
        `INSERT INTO messages.reactions (message_id, user_id, emoji, created_at)
         SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM messages.messages WHERE id = $1 AND deleted_at IS NULL)
         ON CONFLICT DO NOTHING`,
        [event.data.messageId, event.data.userId, event.data.emoji, at],
      );
      await recordDependent(tx, event, event.data.messageId, position, event.data.userId);
      return;
    case 'ReactionRemoved':
      await recordDependent(tx, event, event.data.messageId, position, event.data.userId);
      await tx.query('DELETE FROM messages.reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3', [
        event.data.messageId,
        event.data.userId,
        event.data.emoji,
      ]);
      return;
    case 'PollVoted':
      await tx.query('DELETE FROM messages.poll_votes WHERE poll_id = $1 AND user_id = $2', [event.data.pollId, event.data.userId]);
      await tx.query(
        `INSERT INTO messages.poll_votes (poll_id, user_id, option_id)
         SELECT $1, $2, o FROM unnest($3::text[]) AS o WHERE EXISTS (SELECT 1 FROM messages.polls WHERE id = $1)
         ON CONFLICT DO NOTHING`,
        [event.data.pollId, event.data.userId, event.data.optionIds],
      );
      await recordDependent(tx, event, event.data.messageId, position, event.data.userId);
      return;
    case 'PollClosed':
      await recordDependent(tx, event, event.data.messageId, position, null);
      await tx.query('UPDATE messages.polls SET closed = true WHERE id = $1', [event.data.pollId]);
      return;
    case 'MessagesExpired':
      // Past MESSAGE_RETENTION_DAYS: the rows go for good (not tombstones), with their reactions,
      // polls, votes and attachment links; the row takes its search entry. The event covers at most
      // RETENTION_BATCH_MESSAGES messages (the pass splits a chat's expiry), which bounds the statement.
      // What refers to them leaves the stream with them, also when it is newer than the cutoff.
      await expireMessages(tx, [event]);
      return;
    case 'MemberErased': {
      const { userId, purged, newOwnerId } = event.data;
      await tx.query('DELETE FROM messages.chat_members WHERE chat_id = $1 AND user_id = $2', [event.chatId, userId]);
      // The pair is no more: a direct chat "with" the erased account is refused as with any unknown
      // user (404), not answered with this chat of one member.
      await tx.query('DELETE FROM messages.direct_chats WHERE chat_id = $1 AND (user_a = $2 OR user_b = $2)', [event.chatId, userId]);
      if (newOwnerId) await tx.query(`UPDATE messages.chat_members SET role = 'owner' WHERE chat_id = $1 AND user_id = $2`, [event.chatId, newOwnerId]);
      if (!purged) return;
      await queueDependents(tx, event, 'm.chat_id = $1 AND m.sender_id = $2', [event.chatId, userId], { edits: true });
      await dropAttachments(tx, event, 'erased', 'm.chat_id = $1 AND m.sender_id = $2', [event.chatId, userId]);
      await deleteMessages(tx, 'm.chat_id = $1 AND m.sender_id = $2', [event.chatId, userId]);
      await tx.query('DELETE FROM messages.reactions r USING messages.messages m WHERE r.message_id = m.id AND m.chat_id = $1 AND r.user_id = $2', [event.chatId, userId]);
      await tx.query('DELETE FROM messages.poll_votes v USING messages.polls p WHERE v.poll_id = p.id AND p.chat_id = $1 AND v.user_id = $2', [event.chatId, userId]);
      // Their reaction and vote events leave the stream by the erasure process (erasure.ts): the
      // rows that stood for them go too, as a replay would not make them.
      await tx.query('DELETE FROM messages.dependent_events d USING messages.messages m WHERE d.message_id = m.id AND m.chat_id = $1 AND d.user_id = $2', [event.chatId, userId]);
      return;
    }
    default: {
      const unhandled: never = event;
      throw new Error(`chats projection cannot apply ${(unhandled as { type: string }).type}`);
    }
  }
}
