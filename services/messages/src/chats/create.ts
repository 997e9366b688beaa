import { callRpc, claimSubject, lastOnSubject, type Bus } from '@parley/bus';
import { waitForCheckpoint } from '@parley/projector-pg';
import { initialChatState } from '@parley/chat-domain';
import type { Cache } from '@parley/cache';
import type { ChatWriter } from '@parley/chat-writer';
import { buildMeta, newId, streamName, subjects, type ChatCreated, type ChatMember, type DirectChatClaimed } from '@parley/contracts';
import { AppError, Forbidden, InvalidRequest, NotFound, RateLimited, Unavailable } from '@parley/http';
import { withTransaction, type Pool } from '@parley/pg';
import type { Metrics } from '@parley/telemetry';
import { CHATS_PROJECTOR, CHECKPOINT_TABLE, dropChatLists } from './projection.js';
import { removeErasedMembers } from './erased-members.js';
import { notifyNewMembers } from './notify.js';
import { findDirectChatId } from './queries.js';
import { refusalError } from './write.js';

export interface CreateChatDeps {
  bus: Bus;
  pool: Pool;
  namespace: string;
  writer: ChatWriter;
  /** The members' chat lists are deleted after the checkpoint, as in writeChat. */
  cache: Cache;
  metrics: Metrics;
  /** GROUPS_PER_DAY. */
  groupsPerDay: number;
}

type CreateInput = { type: 'direct'; userId: string } | { type: 'group'; title: string; memberIds: string[] };

/**
 * Creates a chat, or for a direct chat returns the pair's existing one (`created: false`).
 *
 * One direct chat per pair holds across replicas because the pair's claim subject admits one first
 * message. If a process dies after claiming but before `ChatCreated`, the next request finds the
 * claim, sees the chat's subject empty, and finishes the job with the claimed id: the chat writer's
 * expected-sequence check lets only one of several such helpers write seq 1.
 */
export async function createChat(deps: CreateChatDeps, actorId: string, input: CreateInput, correlationId: string): Promise<{ chatId: string; created: boolean }> {
  if (input.type === 'direct') {
    if (input.userId === actorId) throw new InvalidRequest('A direct chat needs another user');
    const existing = await findDirectChatId(deps.pool, actorId, input.userId);
    if (existing) {
      // A retry of a creation whose follow-up never ran (erased-members.ts).
      await removeErasedMembers(deps, existing, [actorId, input.userId], correlationId);
      return { chatId: existing, created: false };
    }
    await requireUsers(deps, actorId, [input.userId], 'direct');
    const chatId = newId();
    const stream = streamName(deps.namespace, 'chats');
    const claim: DirectChatClaimed = {
      type: 'DirectChatClaimed',
      version: 1,
      data: { chatId, userIds: [actorId, input.userId].sort() },
      meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId, correlationId }),
    };
    const holder = await claimSubject(deps.bus.js, deps.bus.jsm, stream, subjects.directChatClaim(deps.namespace, actorId, input.userId), claim, `claim:direct:${chatId}`, deps.metrics);
    const winner = holder ? holder.value.data.chatId : chatId;
    const members: ChatMember[] = [actorId, input.userId].map((userId) => ({ userId, role: 'member' }));
    try {
      const created = await appendCreated(deps, winner, { type: 'direct', title: null, members, createdBy: actorId }, actorId, correlationId);
      return { chatId: winner, created: holder === null && created };
    } finally {
      await removeErasedMembers(deps, winner, [actorId, input.userId], correlationId);
    }
  }
  const others = input.memberIds.filter((id) => id !== actorId);
  await requireUsers(deps, actorId, others, 'group');
  const chatId = newId();
  const members: ChatMember[] = [{ userId: actorId, role: 'owner' }, ...others.map((userId) => ({ userId, role: 'member' as const }))];
  const slot = await takeGroupSlot(deps.pool, deps.groupsPerDay, actorId);
  try {
    await appendCreated(deps, chatId, { type: 'group', title: input.title, members, createdBy: actorId }, actorId, correlationId);
  } catch (error) {
    // Stored but not yet visible: the follow-up all the same (a retry makes another group).
    if (error instanceof Unavailable) await removeErasedMembers(deps, chatId, members.map((m) => m.userId), correlationId).catch(() => {});
    // Refused by the decider: no group, the slot goes back. Anything else (a timeout: stored
    // perhaps, its answer lost; stored but not yet visible) keeps it, or a retry would count once
    // for two groups.
    if (error instanceof AppError && !(error instanceof Unavailable)) await deps.pool.query('DELETE FROM messages.group_creation_slots WHERE id = $1', [slot]).catch(() => {});
    throw error;
  }
  await removeErasedMembers(deps, chatId, members.map((m) => m.userId), correlationId);
  return { chatId, created: true };
}

/**
 * Decides and appends ChatCreated through the chat writer, from the state of a chat that does not
 * exist yet (seq 0): if another replica created it first (a finished claim), the writer folds
 * that and decides again, which adds nothing. Waits until the chat is projected.
 */
async function appendCreated(deps: CreateChatDeps, chatId: string, data: ChatCreated['data'], actorId: string, correlationId: string): Promise<boolean> {
  const subject = subjects.chat(deps.namespace, chatId);
  let created = false;
  let streamSeq: number;
  const result = await deps.writer.execute(chatId, { type: 'CreateChat', actorId, data }, { seq: 0, state: initialChatState() }, { msgId: `chat-created:${chatId}`, actorId, correlationId });
  if ('refusal' in result) {
    if (!result.refusal.ok) throw refusalError(result.refusal);
    // Somebody created it already: only wait for the projection below.
    const last = await lastOnSubject(deps.bus.jsm, streamName(deps.namespace, 'chats'), subject);
    streamSeq = last?.stored.seq ?? 0;
  } else {
    created = !result.duplicate;
    streamSeq = result.streamSeq;
    notifyNewMembers(deps.bus, deps.namespace, chatId, 1, data.members.map((m) => m.userId));
  }
  if (!(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, CHATS_PROJECTOR, streamSeq))) {
    throw new Unavailable('The chat is stored but not yet visible; try again shortly');
  }
  if (!('refusal' in result) && created) await dropChatLists(deps, [result.event]);
  return created;
}

/** Every user exists (404 otherwise) and admits the actor for this purpose (403: a block, or their groupAdd setting). */
async function requireUsers(deps: CreateChatDeps, actorId: string, userIds: string[], purpose: 'direct' | 'group'): Promise<void> {
  if (userIds.length === 0) return;
  const { existing, refused } = await callRpc(deps.bus, deps.namespace, 'users.admission', { actorId, userIds, purpose });
  const missing = userIds.filter((id) => !existing.includes(id));
  if (missing.length > 0) throw new NotFound(`No such user: ${missing.join(', ')}`);
  if (refused.length > 0) {
    throw new Forbidden(purpose === 'group' ? `These users do not accept being added to groups by you: ${refused.join(', ')}` : 'This user does not accept chats from you');
  }
}

/**
 * GROUPS_PER_DAY: groups one account may create in 24 hours (issue 23, finding 8: group spam).
 * Takes one of the creator's slots, counted and inserted under a per-creator lock in one short
 * transaction: counting the projection's groups and appending after, a burst of requests all
 * counted the same groups and all got through. Returns the slot's id.
 */
async function takeGroupSlot(pool: Pool, groupsPerDay: number, actorId: string): Promise<string> {
  return withTransaction(pool, async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 11))', [actorId]);
    // Everyone's slots older than a day go (an erased account's too): the table holds one day.
    await tx.query("DELETE FROM messages.group_creation_slots WHERE taken_at <= now() - interval '1 day'");
    const { rows } = await tx.query<{ n: number; left: number | null }>(
      `SELECT count(*)::int AS n, ceil(extract(epoch FROM min(taken_at) + interval '1 day' - now()))::int AS left
         FROM messages.group_creation_slots WHERE user_id = $1`,
      [actorId],
    );
    const { n, left } = rows[0] ?? { n: 0, left: null };
    if (n >= groupsPerDay) throw new RateLimited(Math.max(1, left ?? 1), `At most ${groupsPerDay} new groups a day`);
    const id = newId();
    await tx.query('INSERT INTO messages.group_creation_slots (id, user_id, taken_at) VALUES ($1, $2, now())', [id, actorId]);
    return id;
  });
}
