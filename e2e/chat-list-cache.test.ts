import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { faultHooks } from '@parley/bus';
import { eventually } from '@parley/testing';
import { CHATS_PROJECTOR } from '../services/messages/src/chats/projection.js';
import { http, readCached, register, startStack, type Stack } from './stack.js';

/**
 * The chats projection deletes the members' cached chat lists (`chats:<userId>`) after its commit,
 * a step that runs after the checkpoint a route waits for and that a crash loses for good. The
 * write paths delete them again once the checkpoint has passed their event (chats/write.ts), so the
 * caller's next GET /chats reads the change. Here the projection's step never runs (the
 * `projector-skip-after-commit` fault), so only the write path's delete can make it show.
 */
describe('chat lists after a change whose projection step was lost', () => {
  let stack: Stack;
  let redis: Redis;
  beforeAll(async () => {
    stack = await startStack({}, { messages: { projectorHooks: faultHooks(`projector-skip-after-commit:${CHATS_PROJECTOR}`) } });
    redis = new Redis(stack.env.redisUrl);
  });
  afterAll(async () => {
    redis?.disconnect();
    await stack?.stop();
  });

  it("shows a deleted last message in the other member's cached chat list", async () => {
    const ann = await register(stack, 'listann');
    const bob = await register(stack, 'listbob');
    const chat = await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } });
    expect(chat.status).toBe(201);
    const sent = await http(stack, 'POST', `/api/v1/chats/${chat.body.id}/messages`, { token: ann.accessToken, body: { clientMsgId: 'c1', body: 'soon deleted' } });
    expect(sent.status).toBe(201);
    // Sending does not wait for the projection: wait until Bob's history (never cached) has it,
    // so his first GET /chats caches a list with it.
    await eventually(async () => {
      const history = await http(stack, 'GET', `/api/v1/chats/${chat.body.id}/messages`, { token: bob.accessToken });
      return history.body.items?.some((m: { id: string }) => m.id === sent.body.id) ? true : undefined;
    });
    const primed = await http(stack, 'GET', '/api/v1/chats', { token: bob.accessToken });
    expect(primed.body.items[0]).toMatchObject({ id: chat.body.id, lastMessage: { body: 'soon deleted' } });
    expect(await readCached(redis, `${stack.env.namespace}:chats:${bob.id}`)).toEqual(primed.body);

    expect((await http(stack, 'DELETE', `/api/v1/messages/${sent.body.id}`, { token: ann.accessToken })).status).toBe(204);

    // The first page with a limit is never cached: what Postgres holds now.
    const fresh = await http(stack, 'GET', '/api/v1/chats?limit=20', { token: bob.accessToken });
    expect(JSON.stringify(fresh.body.items)).not.toContain('soon deleted');
    const list = await http(stack, 'GET', '/api/v1/chats', { token: bob.accessToken });
    expect(list.body.items).toEqual(fresh.body.items);
  }, 60_000);
});
