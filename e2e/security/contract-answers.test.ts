import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawHead } from '../raw-head.js';
import { http, register, startStack, type Account, type Stack } from '../stack.js';
import { expectError } from './helpers.js';

const cursor = (json: string) => Buffer.from(json).toString('base64url');
const ID = '01a24293-6662-7a84-b25f-a69ac787fcd6';

/**
 * Issue 23, finding 10: well-formed cursors holding a number or a date the database cannot hold
 * answered 500 (integer out of range, timestamp out of range), though api.md promises 400 for a bad
 * cursor; HEAD answers carried a body; answers with tokens and personal data could be cached.
 */
describe('contract answers: cursors past what the database holds, HEAD, caching', () => {
  let stack: Stack;
  let a: Account;
  let chatId: string;
  beforeAll(async () => {
    stack = await startStack();
    a = await register(stack);
    const b = await register(stack);
    chatId = (await http(stack, 'POST', '/api/v1/chats', { token: a.accessToken, body: { type: 'group', title: 'cursors', memberIds: [b.id] } })).body.id;
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const cases: [string, () => string][] = [
    ['history, seq past integer', () => `/api/v1/chats/${chatId}/messages?before=${cursor('{"seq":2147483648}')}`],
    ['history, seq 1e300', () => `/api/v1/chats/${chatId}/messages?before=${cursor('{"seq":1e300}')}`],
    ['chat list, year 275760', () => `/api/v1/chats?before=${cursor(`{"at":"+275760-09-13T00:00:00.000Z","id":"${ID}"}`)}`],
    ['chat list, a date JavaScript rolls over', () => `/api/v1/chats?before=${cursor(`{"at":"2026-02-30T00:00:00.000Z","id":"${ID}"}`)}`],
    ['audit log, year 0', () => `/api/v1/users/me/audit?before=${cursor(`{"at":"0000-01-01T00:00:00.000Z","id":"${ID}"}`)}`],
    ['search, an infinite rank', () => `/api/v1/search?q=hello&before=${cursor(`{"rank":1e400,"id":"${ID}"}`)}`],
    // A cursor's string reaches the query as text, which PostgreSQL refuses with U+0000 (a 500).
    ['user search, U+0000 in the name it continues after', () => `/api/v1/users?query=ab&before=${cursor('{"after":"\\u0000"}')}`],
    ['user search, a lone surrogate in it', () => `/api/v1/users?query=ab&before=${cursor('{"after":"\\ud800"}')}`],
  ];
  for (const [name, url] of cases) {
    it(name, async () => {
      expectError(await http(stack, 'GET', url(), { token: a.accessToken }), 400, 'invalid_request');
    });
  }

  it('marks answers with tokens or personal data no-store', async () => {
    const login = await fetch(`${stack.baseUrl}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: a.username, password: a.password }) });
    expect(login.status).toBe(200);
    expect(login.headers.get('cache-control')).toBe('no-store');
    for (const url of ['/api/v1/users/me', '/api/v1/users/me/export']) {
      const answer = await fetch(`${stack.baseUrl}${url}`, { headers: { authorization: `Bearer ${a.accessToken}` } });
      expect(answer.status, url).toBe(200);
      expect(answer.headers.get('cache-control'), url).toBe('no-store');
    }
  });

  it('answers HEAD with the headers and length of GET, and no body', async () => {
    const get = await fetch(`${stack.baseUrl}/api/v1/users/me`, { headers: { authorization: `Bearer ${a.accessToken}` } });
    const body = await get.text();
    const head = await rawHead(stack.baseUrl, '/api/v1/users/me', a.accessToken);
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    expect(head.headers['content-type']).toBe('application/json; charset=utf-8');
    // uWebSockets.js takes no further request on a connection after a body-less answer: it says so.
    expect(head.headers.connection).toBe('close');
    expect(head.after).toBe('');
  });
});
