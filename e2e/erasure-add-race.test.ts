import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMeta, newId, subjects, type ErasureRecorded } from '@parley/contracts';
import { eventually } from '@parley/testing';
import { http, register, startStack, TestSocket, type Account, type Stack } from './stack.js';

/**
 * An account whose erasure begins while someone adds it to a chat: `users.admission` answered that
 * it exists, the erasure's process left the chats it knew of, and the new membership stayed for
 * good (an erased account in a group, its name "deleted" in the member list). The erasure's first
 * step is its ledger entry (services/users/src/erasure/erase.ts); here that step alone has
 * happened when the add arrives, which is the moment of the race.
 */
describe('an account erased while it was being added to a chat', () => {
  let stack: Stack;
  let nc: NatsConnection;
  beforeAll(async () => {
    stack = await startStack();
    nc = await stack.env.connectNats('erasure-add-race');
  });
  afterAll(async () => {
    await nc?.close();
    await stack?.stop();
  });

  const erasureBegins = async (who: Account, purgeMessages = false) => {
    const ledger: ErasureRecorded = {
      type: 'ErasureRecorded',
      version: 1,
      data: { kind: 'user', userId: who.id, purgeMessages },
      meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: who.id, correlationId: newId() }),
    };
    await jetstream(nc).publish(subjects.erasedUser(stack.env.namespace, who.id), JSON.stringify(ledger), { msgID: `erasure:user:${who.id}` });
  };
  const membersOf = async (owner: Account, chatId: string) =>
    ((await http(stack, 'GET', `/api/v1/chats/${chatId}`, { token: owner.accessToken })).body.members as { userId: string }[]).map((m) => m.userId);

  it('takes the account out again of a group it was added to, and of a group and a direct chat made with it', async () => {
    const [owner, late, other] = [await register(stack), await register(stack), await register(stack)];
    const group = await http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'group', title: 'race', memberIds: [other.id] } });
    expect(group.status).toBe(201);
    await erasureBegins(late);

    expect((await http(stack, 'POST', `/api/v1/chats/${group.body.id}/members`, { token: owner.accessToken, body: { userId: late.id } })).status).toBe(201);
    // Before: the member stayed (nothing after the add looked at the erasure).
    await eventually(async () => ((await membersOf(owner, group.body.id)).includes(late.id) ? undefined : true), 10_000, 'the erased account out of the group');
    expect(await membersOf(owner, group.body.id)).toEqual(expect.arrayContaining([owner.id, other.id]));

    const made = await http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'group', title: 'race 2', memberIds: [late.id, other.id] } });
    expect(made.status).toBe(201);
    await eventually(async () => ((await membersOf(owner, made.body.id)).includes(late.id) ? undefined : true), 10_000, 'the erased account out of the new group');
    const direct = await http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'direct', userId: late.id } });
    expect(direct.status).toBe(201);
    await eventually(async () => ((await membersOf(owner, direct.body.id)).includes(late.id) ? undefined : true), 10_000, 'the erased account out of the direct chat');
  });

  it('takes the account out when the add is asked again (its first answer, and the check after it, were lost)', async () => {
    const [owner, late] = [await register(stack), await register(stack)];
    const group = await http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'group', title: 'retried', memberIds: [late.id] } });
    expect(group.status).toBe(201);
    // A member already (the first add went through; its follow-up never ran) when the erasure begins.
    await erasureBegins(late);
    const again = await http(stack, 'POST', `/api/v1/chats/${group.body.id}/members`, { token: owner.accessToken, body: { userId: late.id } });
    expect(again.status).toBeLessThan(500);
    // Before: "already a member", and nothing looked at the erasure.
    await eventually(async () => ((await membersOf(owner, group.body.id)).includes(late.id) ? undefined : true), 10_000, 'the erased account out of the group');
  });

  it('a refused add of such an account writes nothing into the chat, nor into a chat that does not exist', async () => {
    // With a purge, the erasure's event was appended for whoever the ledger named, member or not,
    // after any answer: a non-member's refused add (404) put a member.removed into the group.
    const [owner, member, outsider, ghost] = [await register(stack), await register(stack), await register(stack), await register(stack)];
    const group = await http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'group', title: 'watched', memberIds: [member.id] } });
    expect(group.status).toBe(201);
    await erasureBegins(ghost, true);
    const watcher = await TestSocket.open(stack.wsUrl, member.accessToken);
    try {
      const add = (by: Account, chatId: string) => http(stack, 'POST', `/api/v1/chats/${chatId}/members`, { token: by.accessToken, body: { userId: ghost.id } });
      expect((await add(outsider, group.body.id)).status).toBe(404);
      expect((await add(member, group.body.id)).status).toBe(403);
      const nowhere = newId();
      expect((await add(owner, nowhere)).status).toBe(404);
      // The next event in the group comes right after its creation, and nothing is in the other.
      expect((await http(stack, 'PATCH', `/api/v1/chats/${group.body.id}`, { token: owner.accessToken, body: { title: 'still watched' } })).status).toBe(200);
      const renamed = await watcher.next((f) => f.type === 'chat.updated' && f.chatId === group.body.id);
      expect(renamed.seq).toBe(2);
      expect(watcher.frames.filter((f) => f.type === 'member.removed')).toEqual([]);
      expect(await (await jetstreamManager(nc)).streams.getMessage(`${stack.env.namespace}_chats`, { last_by_subj: subjects.chat(stack.env.namespace, nowhere) })).toBeNull();
    } finally {
      watcher.ws.close();
    }
  });
});
