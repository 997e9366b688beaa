import { callRpc, type Bus } from '@parley/bus';
import type { Cache } from '@parley/cache';
import type { ChatWriter } from '@parley/chat-writer';
import type { Pool } from '@parley/pg';
import { removeErasedMembers } from './erased-members.js';
import { notifyNewMembers } from './notify.js';
import { writeChat } from './write.js';

export interface ManageDeps {
  pool: Pool;
  namespace: string;
  bus: Bus;
  writer: ChatWriter;
  cache: Cache;
}

/**
 * Group administration, decided by the chat decider (@parley/chat-domain) against the members as
 * the projection has them plus every event stored since, and decided again when another writer
 * appends first: a member removed concurrently is never named the new owner, an admin removed
 * concurrently can no longer remove anyone (issue 17).
 */
export async function renameChat(deps: ManageDeps, actorId: string, chatId: string, title: string, correlationId: string): Promise<void> {
  await writeChat(deps, chatId, { type: 'Rename', actorId, title }, { msgId: `rename:${correlationId}`, actorId, correlationId });
}

export async function addMember(deps: ManageDeps, actorId: string, chatId: string, userId: string, correlationId: string): Promise<void> {
  const { existing, refused } = await callRpc(deps.bus, deps.namespace, 'users.admission', { actorId, userIds: [userId], purpose: 'group' });
  const command = { type: 'AddMember' as const, actorId, userId, userExists: existing.length > 0, admitted: refused.length === 0 };
  try {
    const added = await writeChat(deps, chatId, command, { msgId: `add:${chatId}:${userId}:${correlationId}`, actorId, correlationId });
    if (added) notifyNewMembers(deps.bus, deps.namespace, chatId, added.event.seq, [userId]);
  } finally {
    // Whatever the answer: stored but not yet visible (503), or already a member (a retry of an
    // add whose follow-up never ran) leave the same question open (erased-members.ts).
    await removeErasedMembers(deps, chatId, [userId], correlationId);
  }
}

/**
 * Removes a member, or lets a member leave (actor === user). Owners and admins remove members;
 * only the owner removes an admin; nobody removes the owner, who leaves instead. When the owner
 * leaves, the longest-standing admin (else member) becomes owner in the same event.
 */
export async function removeMember(deps: ManageDeps, actorId: string, chatId: string, userId: string, correlationId: string): Promise<void> {
  await writeChat(deps, chatId, { type: 'RemoveMember', actorId, userId }, { msgId: `remove:${chatId}:${userId}:${correlationId}`, actorId, correlationId });
}
