import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, readCached, register, startStack, type Account, type Stack } from './stack.js';

describe('search and the cached chat list', () => {
  let stack: Stack;
  let ann: Account;
  let bob: Account;
  let eve: Account;
  let shared: string;
  let secret: string;

  beforeAll(async () => {
    stack = await startStack();
    [ann, bob, eve] = [await register(stack, 'se_ann'), await register(stack, 'se_bob'), await register(stack, 'se_eve')];
    shared = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'group', title: 'shared', memberIds: [bob.id] } })).body.id;
    secret = (await http(stack, 'POST', '/api/v1/chats', { token: eve.accessToken, body: { type: 'group', title: 'secret', memberIds: [] } })).body.id;
    let n = 0;
    const say = (who: Account, chat: string, body: string) =>
      http(stack, 'POST', `/api/v1/chats/${chat}/messages`, { token: who.accessToken, body: { clientMsgId: `s${++n}`, body } });
    await say(ann, shared, 'The deployment messages are noisy today');
    await say(bob, shared, 'Новое сообщение о релизе');
    await say(bob, shared, 'lunch at noon?');
    await say(bob, shared, 'Релизы deploying сегодня');
    await say(ann, shared, 'message <b>bold</b> & friends');
    await say(eve, secret, 'secret message about the release');
    const deleted = await say(ann, shared, 'a deleted message about lunch');
    await http(stack, 'DELETE', `/api/v1/messages/${deleted.body.id}`, { token: ann.accessToken });
  });
  afterAll(async () => stack?.stop());

  const search = (who: Account, query: string) => http(stack, 'GET', `/api/v1/search?${query}`, { token: who.accessToken });

  it('finds word forms in English and Russian, best match first, in the caller\'s chats only', async () => {
    const english = await eventually(async () => {
      const r = await search(bob, 'q=message');
      return r.body.items.length === 2 ? r : undefined;
    });
    expect(english.body.items.map((m: { body: string }) => m.body).sort()).toEqual(['The deployment messages are noisy today', 'message <b>bold</b> & friends']);
    expect(english.body.items.every((m: { chatId: string }) => m.chatId === shared)).toBe(true);
    const russian = await search(bob, `q=${encodeURIComponent('сообщения')}`);
    expect(russian.body.items.map((m: { body: string }) => m.body)).toEqual(['Новое сообщение о релизе']);
    // Eve's chat has a matching message; Bob never sees it, and Eve never sees Bob's.
    expect((await search(eve, 'q=message')).body.items.map((m: { chatId: string }) => m.chatId)).toEqual([secret]);
    // A deleted message is gone from search.
    expect((await search(bob, 'q=lunch')).body.items.map((m: { body: string }) => m.body)).toEqual(['lunch at noon?']);
  });

  it('stems each word of a message that mixes both languages by its own alphabet, in the query too', async () => {
    const bodies = async (q: string) => (await search(bob, `q=${encodeURIComponent(q)}`)).body.items.map((m: { body: string }) => m.body).sort();
    await eventually(async () => ((await bodies('deployed')).length === 2 ? true : undefined));
    expect(await bodies('deployed')).toEqual(['The deployment messages are noisy today', 'Релизы deploying сегодня'].sort());
    expect(await bodies('релиз')).toEqual(['Новое сообщение о релизе', 'Релизы deploying сегодня'].sort());
    expect(await bodies('deploy релизов')).toEqual(['Релизы deploying сегодня']);
  });

  it('highlights matches in an HTML-safe snippet', async () => {
    const r = await search(ann, 'q=bold');
    const snippet: string = r.body.items[0].snippet;
    // Markup in a body never reaches the snippet as markup (Postgres' headline drops tags; the rest is escaped).
    expect(snippet).toContain('<mark>bold</mark>');
    expect(snippet).toContain('&amp; friends');
    expect(snippet.replaceAll('<mark>', '').replaceAll('</mark>', '')).not.toMatch(/[<>]/);
    expect(r.body.items[0].body).toBe('message <b>bold</b> & friends');
  });

  it("marks only real matches: a body's own U+0001/U+0002 never become <mark> in another member's snippet", async () => {
    // The snippet's match delimiters were U+0001/U+0002, which a body may contain (only U+0000 is refused).
    const body = 'rollout x\u0001forged\u0002 plan';
    const sent = await http(stack, 'POST', `/api/v1/chats/${shared}/messages`, { token: ann.accessToken, body: { clientMsgId: 'forge', body } });
    expect(sent.status).toBe(201);
    const r = await eventually(async () => {
      const found = await search(bob, 'q=rollout');
      return found.body.items.length === 1 ? found : undefined;
    });
    const snippet: string = r.body.items[0].snippet;
    expect(snippet).toContain('<mark>rollout</mark>');
    expect(snippet).not.toContain('<mark>forged');
    expect(snippet.match(/<mark>/g)).toHaveLength(1);
    expect(snippet.match(/<\/mark>/g)).toHaveLength(1);
    expect(snippet).not.toContain('\u0001');
    expect(snippet).not.toContain('\u0002');
    expect(r.body.items[0].body).toBe(body);
  });

  it('limits to one chat on request, 404 for a chat one is not in, and pages', async () => {
    expect((await search(bob, `q=message&chatId=${secret}`)).status).toBe(404);
    expect((await search(bob, `q=message&chatId=${shared}`)).body.items).toHaveLength(2);
    const first = await search(bob, 'q=message&limit=1');
    expect(first.body.items).toHaveLength(1);
    const second = await search(bob, `q=message&limit=1&before=${first.body.nextCursor}`);
    expect(second.body.items).toHaveLength(1);
    expect(second.body.items[0].id).not.toBe(first.body.items[0].id);
    expect(second.body.nextCursor).toBeNull();
    for (const bad of ['', 'q=', `q=${'x'.repeat(201)}`, 'q=a&chatId=nope', 'q=a&extra=1']) {
      expect((await search(bob, bad)).status, bad).toBe(400);
    }
  });

  it('caches the first page of the chat list and drops it when a chat changes', async () => {
    const redis = new Redis(stack.env.redisUrl);
    try {
      const key = `${stack.env.namespace}:chats:${bob.id}`;
      await redis.del(key);
      const before = await http(stack, 'GET', '/api/v1/chats', { token: bob.accessToken });
      expect(await readCached(redis, key)).toEqual(before.body);
      expect(await redis.ttl(key)).toBeGreaterThan(1700);
      await http(stack, 'POST', `/api/v1/chats/${shared}/messages`, { token: ann.accessToken, body: { clientMsgId: 'fresh', body: 'fresh news' } });
      await eventually(async () => ((await redis.exists(key)) === 0 ? true : undefined));
      const after = await http(stack, 'GET', '/api/v1/chats', { token: bob.accessToken });
      expect(after.body.items[0].lastMessage.body).toBe('fresh news');
    } finally {
      redis.disconnect();
    }
  });
});
