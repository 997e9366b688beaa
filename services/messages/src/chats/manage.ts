import { callRpc, type Bus } from '@parley/bus';
import type { ChatRenamed, MemberAdded, MemberRemoved } from '@parley/contracts';
import { Conflict, Forbidden, InvalidRequest, NotFound } from '@parley/http';
import type { Queryable } from '@parley/pg';
import { appendChatEvent, type AppendDeps } from './append.js';
import { isAdmin, requireGroupAdmin, requireMember } from './access.js';
import { notifyNewMembers } from './notify.js';

export interface ManageDeps extends AppendDeps {
  bus: Bus;
}

export async function renameChat(deps: ManageDeps, actorId: string, chatId: string, title: string, correlationId: string): Promise<void> {
  requireGroupAdmin(await requireMember(deps.pool, chatId, actorId));
  await appendChatEvent<ChatRenamed>(deps, chatId, `rename:${correlationId}`, actorId, correlationId, { type: 'ChatRenamed', data: { title, renamedBy: actorId } }, { waitForProjection: true });
}

export async function addMember(deps: ManageDeps, actorId: string, chatId: string, userId: string, correlationId: string): Promise<void> {
  requireGroupAdmin(await requireMember(deps.pool, chatId, actorId));
  if (await roleOf(deps.pool, chatId, userId)) throw new Conflict('conflict', 'That user is already a member');
  const { userIds } = await callRpc(deps.bus, deps.namespace, 'users.existing', { userIds: [userId] });
  if (userIds.length === 0) throw new NotFound('No such user');
  const added = await appendChatEvent<MemberAdded>(deps, chatId, `add:${chatId}:${userId}:${correlationId}`, actorId, correlationId, {
    type: 'MemberAdded',
    data: { userId, role: 'member', addedBy: actorId },
  }, { waitForProjection: true });
  notifyNewMembers(deps.bus, deps.namespace, chatId, added.event.seq, [userId]);
}

/**
 * Removes a member, or lets a member leave (actor === user). Owners and admins remove members;
 * only the owner removes an admin; nobody removes the owner, who leaves instead. When the owner
 * leaves, the longest-standing admin (else member) becomes owner in the same event.
 */
export async function removeMember(deps: ManageDeps, actorId: string, chatId: string, userId: string, correlationId: string): Promise<void> {
  const actor = await requireMember(deps.pool, chatId, actorId);
  if (actor.chatType !== 'group') throw new InvalidRequest('Direct chats have no members to remove');
  const leaving = actorId === userId;
  const targetRole = leaving ? actor.role : await roleOf(deps.pool, chatId, userId);
  if (!targetRole) throw new NotFound('No such member');
  if (!leaving) {
    if (!isAdmin(actor)) throw new Forbidden('Only the group owner or an admin may remove members');
    if (targetRole === 'owner' || (targetRole === 'admin' && actor.role !== 'owner')) throw new Forbidden('You may not remove this member');
  }
  const newOwnerId = leaving && targetRole === 'owner' ? await successor(deps.pool, chatId, actorId) : null;
  await appendChatEvent<MemberRemoved>(deps, chatId, `remove:${chatId}:${userId}:${correlationId}`, actorId, correlationId, {
    type: 'MemberRemoved',
    data: { userId, removedBy: actorId, reason: leaving ? 'left' : 'removed', newOwnerId },
  }, { waitForProjection: true });
}

async function roleOf(db: Queryable, chatId: string, userId: string): Promise<string | null> {
  const { rows } = await db.query<{ role: string }>('SELECT role FROM messages.chat_members WHERE chat_id = $1 AND user_id = $2', [chatId, userId]);
  return rows[0]?.role ?? null;
}

async function successor(db: Queryable, chatId: string, ownerId: string): Promise<string | null> {
  const { rows } = await db.query<{ user_id: string }>(
    `SELECT user_id FROM messages.chat_members WHERE chat_id = $1 AND user_id <> $2
      ORDER BY (role = 'admin') DESC, joined_seq, user_id LIMIT 1`,
    [chatId, ownerId],
  );
  return rows[0]?.user_id ?? null;
}
