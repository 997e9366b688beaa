import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, TestSocket, type Account, type Stack } from '../stack.js';
import { ERROR_CODES } from './helpers.js';

/**
 * Property-based fuzzing (issue 10, fast-check): every HTTP body, query and path schema of
 * api.md and docs/api.md, and every WebSocket frame op, gets arbitrary and near-valid input on a
 * real stack. Whatever arrives, the answer is the contract's: a documented success, or the error
 * envelope with a status that fits its code; never a 5xx, never a dropped connection, never a
 * socket closed without a contract close code; and the services stay up.
 *
 * Near-valid means a valid sample with one field replaced by something odd, one field missing or
 * one key added (prototype keys included): that reaches deeper than random JSON, past the schema
 * into the handlers. Runs are modest (issue 10: the directory in about two minutes on two loaded
 * cores); each run draws new cases, and a failure prints the seed that replays it.
 */

const RUNS_PER_ROUTE = 50;
const RUNS_PER_OP = 80;
let cases = 0;

const GHOST = '01900000-0000-7000-8000-000000000000';
/** Strings that have broken servers before: NUL, lone surrogates, prototype names, injections, huge. */
const NASTY = ['', ' ', '\u0000', 'a\u0000b', '\ud800', '\udfff x', '😀', '__proto__', 'constructor', "'; DROP TABLE users.users; --", '%00', '../../etc/passwd', '${7*7}', '<script>', 'a'.repeat(5_000), '1e999', '-1', '0', GHOST, 'null'];
const oddStrings = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY) },
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
);
const odd = fc.oneof(
  { weight: 4, arbitrary: oddStrings },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  fc.integer(),
  fc.constantFrom(-1, 0, 1e308, Number.MAX_SAFE_INTEGER + 2, 0.5),
  fc.constant(null),
  fc.boolean(),
  fc.array(oddStrings, { maxLength: 4 }),
);
const extraKey = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'admin', 'role', 'userId', 'id'), fc.string({ maxLength: 10 }));
/** Characters that a schema's string type lets through but storage may not take. */
const poison = fc.constantFrom('\u0000', '\ud800', '\udc00');

/**
 * A valid sample, or it with one field odd, one field gone, one key more, or a poisonous
 * character slipped into one of its strings; or any JSON at all.
 */
function nearValid(sample: Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(sample);
  const stringKeys = keys.filter((k) => typeof sample[k] === 'string');
  const variants: fc.WeightedArbitrary<unknown>[] = [
    { weight: 1, arbitrary: fc.constant(sample) },
    { weight: 1, arbitrary: fc.tuple(extraKey, odd).map(([key, value]) => ({ ...sample, [key]: value })) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  ];
  if (keys.length > 0) {
    variants.push({ weight: 4, arbitrary: fc.tuple(fc.constantFrom(...keys), odd).map(([key, value]) => ({ ...sample, [key]: value })) });
    variants.push({ weight: 1, arbitrary: fc.constantFrom(...keys).map((key) => Object.fromEntries(Object.entries(sample).filter(([k]) => k !== key))) });
  }
  if (stringKeys.length > 0) {
    variants.push({
      weight: 2,
      arbitrary: fc.tuple(fc.constantFrom(...stringKeys), poison, fc.nat()).map(([key, bad, at]) => {
        const text = sample[key] as string;
        const i = at % (text.length + 1);
        return { ...sample, [key]: text.slice(0, i) + bad + text.slice(i) };
      }),
    });
  }
  return fc.oneof(...variants);
}

/**
 * Gives a sample's clientMsgId a fresh value per case, so a message is really sent each time
 * instead of being answered from the dedup window.
 */
function freshIds(arbitrary: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.tuple(arbitrary, fc.uuid()).map(([value, id]) =>
    typeof value === 'object' && value !== null && (value as { clientMsgId?: unknown }).clientMsgId === 'fz' ? { ...value, clientMsgId: `fz-${id.slice(0, 8)}` } : value,
  );
}

/** JSON text nested far deeper than any schema (the gateway once overflowed its stack at 5,000). */
const deepText = fc.integer({ min: 30, max: 20_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`);

/**
 * URL-encodes a path segment. A lone surrogate has no UTF-8 form (encodeURIComponent throws), so
 * it goes as its WTF-8 bytes: percent-encoded invalid UTF-8, itself a case worth sending.
 */
function encodeSegment(text: string): string {
  return encodeURIComponent(text.replace(/[\uD800-\uDFFF]/g, (c, i: number) => (isPair(text, i) ? c : '\uFFFD'))).replace(/%EF%BF%BD/g, '%ED%A0%80');
}
function isPair(text: string, i: number): boolean {
  const code = text.charCodeAt(i);
  return code <= 0xdbff ? /[\uDC00-\uDFFF]/.test(text[i + 1] ?? '') : /[\uD800-\uDBFF]/.test(text[i - 1] ?? '');
}

/** What a path parameter may be: a real id, a ghost, or anything at all (URL-encoded). */
const segment = (...real: string[]) => fc.oneof(fc.constantFrom(...real, GHOST), fc.uuid(), oddStrings.filter((s) => s.length < 300));

/** Status codes each error code belongs with (api.md's list, docs/api.md's additions). */
const STATUS_OF: Record<string, number[]> = {
  invalid_request: [400],
  unauthorized: [401],
  invalid_credentials: [401],
  forbidden: [403],
  not_found: [404],
  conflict: [409],
  username_taken: [409],
  email_taken: [409],
  payload_too_large: [413],
  unprocessable: [422],
  rate_limited: [429],
};

interface Route {
  method: string;
  /** Path template with :params, each filled from `params`. */
  path: string;
  params?: Record<string, fc.Arbitrary<string>>;
  body?: fc.Arbitrary<unknown>;
  query?: Record<string, string>;
  success: number[];
  token?: 'none' | 'user';
}

describe('fuzzing every body, query, path and frame schema', () => {
  let stack: Stack;
  let dir: string;
  let alice: Account;
  let bob: Account;
  let routes: Route[];
  let chatId: string;
  let groupId: string;
  let messageId: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'parley-fuzz-'));
    stack = await startStack({
      ATTACHMENTS_DIR: dir,
      // Throttles raised so the fuzzer reaches the handlers (their own suites prove them).
      WS_FRAME_RATE: '100000',
      WS_FRAME_BURST: '100000',
      USER_SEARCH_RATE: '100000',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '100000',
      LOGIN_SLOWDOWN_AFTER_FAILURES: '100000',
      LOGIN_MAX_FAILURES_PER_ADDRESS: '100000',
    });
    [alice, bob] = [await register(stack, 'fuzz_alice'), await register(stack, 'fuzz_bob')];
    const a = alice.accessToken;
    chatId = (await http(stack, 'POST', '/api/v1/chats', { token: a, body: { type: 'direct', userId: bob.id } })).body.id;
    groupId = (await http(stack, 'POST', '/api/v1/chats', { token: a, body: { type: 'group', title: 'fuzz', memberIds: [bob.id] } })).body.id;
    messageId = (await http(stack, 'POST', `/api/v1/chats/${groupId}/messages`, { token: a, body: { clientMsgId: 'seed', body: 'seed' } })).body.id;
    const poll = (await http(stack, 'POST', `/api/v1/chats/${groupId}/polls`, { token: a, body: { question: 'q?', options: ['a', 'b'] } })).body.poll;
    const chat = segment(chatId, groupId);
    const message = segment(messageId, poll.id);
    const page = { limit: '5', before: 'eyJzZXEiOjF9' };
    routes = [
      { method: 'POST', path: '/api/v1/auth/register', token: 'none', success: [201], body: nearValid({ username: 'fuzzed_user', email: 'fuzzed@example.test', password: 'long enough passphrase', displayName: 'F' }) },
      { method: 'POST', path: '/api/v1/auth/login', token: 'none', success: [200], body: nearValid({ login: bob.username, password: 'wrong password' }) },
      { method: 'POST', path: '/api/v1/auth/refresh', token: 'none', success: [200], body: nearValid({ refreshToken: 'not-a-real-refresh-token' }) },
      { method: 'POST', path: '/api/v1/auth/password-reset/request', token: 'none', success: [202], body: nearValid({ email: `${bob.username}@example.test` }) },
      { method: 'POST', path: '/api/v1/auth/password-reset/confirm', token: 'none', success: [204], body: nearValid({ token: 'A'.repeat(43), newPassword: 'long enough passphrase' }) },
      // Logout with fuzzed bodies but never a real token (a real one would end the fuzzer's session).
      { method: 'POST', path: '/api/v1/auth/logout', token: 'none', success: [204], body: nearValid({}) },
      { method: 'GET', path: '/api/v1/users/me', success: [200] },
      { method: 'PATCH', path: '/api/v1/users/me', success: [200], body: nearValid({ displayName: 'Alice', bio: 'hi', avatarUrl: null }) },
      { method: 'GET', path: '/api/v1/users', success: [200], query: { query: 'fu', ...page } },
      { method: 'GET', path: '/api/v1/users/:id', success: [200], params: { id: segment(bob.id) } },
      { method: 'GET', path: '/api/v1/users/me/export', success: [200] },
      { method: 'GET', path: '/api/v1/users/me/audit', success: [200], query: page },
      // Wrong current password in every sample: the fuzzer's password never changes.
      { method: 'POST', path: '/api/v1/users/me/password', success: [204], body: nearValid({ currentPassword: 'not the password', newPassword: 'long enough passphrase' }) },
      { method: 'DELETE', path: '/api/v1/users/me', success: [202], body: nearValid({ password: 'not the password' }) },
      { method: 'GET', path: '/api/v1/contacts', success: [200], query: page },
      { method: 'POST', path: '/api/v1/contacts', success: [201, 200], body: nearValid({ userId: bob.id }) },
      { method: 'DELETE', path: '/api/v1/contacts/:userId', success: [204], params: { userId: segment(bob.id) } },
      { method: 'GET', path: '/api/v1/chats', success: [200], query: page },
      { method: 'POST', path: '/api/v1/chats', success: [200, 201], body: fc.oneof(nearValid({ type: 'direct', userId: bob.id }), nearValid({ type: 'group', title: 'g', memberIds: [bob.id] })) },
      { method: 'GET', path: '/api/v1/chats/:id', success: [200], params: { id: chat } },
      { method: 'PATCH', path: '/api/v1/chats/:id', success: [200], params: { id: chat }, body: nearValid({ title: 'renamed' }) },
      { method: 'POST', path: '/api/v1/chats/:id/members', success: [201, 200], params: { id: chat }, body: nearValid({ userId: bob.id }) },
      // Never alice's own id: removing herself would end the fuzzing of the group.
      { method: 'DELETE', path: '/api/v1/chats/:id/members/:userId', success: [204], params: { id: chat, userId: segment(GHOST) } },
      { method: 'POST', path: '/api/v1/chats/:id/read', success: [204], params: { id: chat }, body: nearValid({ messageId }) },
      { method: 'GET', path: '/api/v1/chats/:id/reads', success: [200], params: { id: chat } },
      { method: 'GET', path: '/api/v1/chats/:id/messages', success: [200], params: { id: chat }, query: page },
      { method: 'POST', path: '/api/v1/chats/:id/messages', success: [200, 201], params: { id: chat }, body: freshIds(nearValid({ clientMsgId: 'fz', body: 'hello', replyTo: messageId, attachmentIds: [] })) },
      { method: 'PATCH', path: '/api/v1/messages/:id', success: [200], params: { id: message }, body: nearValid({ body: 'edited' }) },
      { method: 'DELETE', path: '/api/v1/messages/:id', success: [204], params: { id: segment(GHOST) } },
      { method: 'POST', path: '/api/v1/messages/:id/reactions', success: [201, 200], params: { id: message }, body: nearValid({ emoji: '👍' }) },
      { method: 'DELETE', path: '/api/v1/messages/:id/reactions/:emoji', success: [204], params: { id: message, emoji: fc.oneof(fc.constant('👍'), oddStrings.filter((s) => s.length < 300)) } },
      { method: 'POST', path: '/api/v1/chats/:id/polls', success: [201], params: { id: chat }, body: nearValid({ question: 'q?', options: ['a', 'b'], multiple: false }) },
      { method: 'POST', path: '/api/v1/polls/:id/votes', success: [200], params: { id: segment(poll.id) }, body: nearValid({ optionIds: [poll.options[0].id] }) },
      { method: 'POST', path: '/api/v1/polls/:id/close', success: [200], params: { id: segment(GHOST) } },
      { method: 'GET', path: '/api/v1/attachments/:id', success: [200], params: { id: segment(GHOST) } },
      { method: 'GET', path: '/api/v1/attachments/:id/thumbnail', success: [200], params: { id: segment(GHOST) } },
      { method: 'GET', path: '/api/v1/search', success: [200], query: { q: 'seed', chatId: groupId, ...page } },
    ];
  });
  afterAll(async () => {
    console.log(`fuzz.test.ts: ${cases} fuzz cases run`);
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Checks one HTTP answer against the contract. */
  function expectContract(route: Route, label: string, status: number, text: string, contentType: string | null): void {
    expect(status, `${label} → ${status} ${text.slice(0, 300)}`).toBeLessThan(500);
    if (status >= 400) {
      const body = JSON.parse(text);
      expect(contentType).toMatch(/^application\/json/);
      expect(Object.keys(body), label).toEqual(['error']);
      const { code, message, details, ...rest } = body.error;
      expect(rest, label).toEqual({});
      expect(ERROR_CODES.has(code), `${label}: unknown code ${code}`).toBe(true);
      expect(STATUS_OF[code], `${label}: ${code} with ${status}`).toContain(status);
      expect(typeof message).toBe('string');
      void details;
      return;
    }
    expect(route.success, `${label} → ${status}`).toContain(status);
    if (status !== 204) expect(typeof JSON.parse(text), label).toBe('object');
  }

  /** Query: the route's valid keys with odd values sometimes, plus odd keys sometimes. */
  const queryOf = (valid: Record<string, string> = {}) =>
    fc
      .tuple(
        fc.subarray(Object.keys(valid)),
        fc.dictionary(fc.constantFrom(...Object.keys(valid), 'limit', 'before', '__proto__'), oddStrings, { maxKeys: 2 }),
        fc.dictionary(extraKey, oddStrings, { maxKeys: 1 }),
        fc.nat({ max: 3 }),
      )
      .map(([keep, oddValues, extra, mode]) => {
        const base = Object.fromEntries(keep.map((k) => [k, valid[k]!]));
        const entries = mode === 0 ? base : mode === 1 ? { ...base, ...oddValues } : mode === 2 ? { ...base, ...extra } : { ...valid };
        return new URLSearchParams(Object.entries(entries)).toString();
      });

  it('answers every HTTP route by the contract, whatever the body, query or path', async () => {
    for (const route of routes) {
      const paramNames = [...route.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
      const arbitrary = fc.record({
        params: fc.record(Object.fromEntries(paramNames.map((n) => [n, route.params![n]!]))),
        query: route.query || route.method === 'GET' ? queryOf(route.query) : fc.constant(''),
        // A body as JSON, or now and then not JSON at all.
        body: route.body ? fc.oneof({ weight: 8, arbitrary: route.body.map((b) => JSON.stringify(b)) }, fc.string({ maxLength: 30 }), deepText) : fc.constant(undefined),
        auth: route.token === 'none' ? fc.constantFrom(undefined, 'Bearer forged.token.here', `Bearer ${bob.accessToken}x`) : fc.constantFrom(`Bearer ${alice.accessToken}`),
      });
      await fc.assert(
        fc.asyncProperty(arbitrary, async ({ params, query, body, auth }) => {
          cases++;
          const url = route.path.replace(/:(\w+)/g, (_, n: string) => encodeSegment(params[n]!)) + (query ? `?${query}` : '');
          const headers: Record<string, string> = {};
          if (auth) headers.authorization = auth;
          if (body !== undefined) headers['content-type'] = 'application/json';
          const res = await fetch(`${stack.baseUrl}${url}`, { method: route.method, headers, body });
          expectContract(route, `${route.method} ${url.slice(0, 200)} ${String(body).slice(0, 200)}`, res.status, await res.text(), res.headers.get('content-type'));
        }),
        { numRuns: RUNS_PER_ROUTE },
      );
    }
  }, 240_000);

  it('answers uploads with any name, declared type and bytes by the contract', async () => {
    await fc.assert(
      fc.asyncProperty(oddStrings.filter((s) => s.length < 300), fc.constantFrom('text/plain', 'image/png', 'application/x-evil', '', 'text/html; charset=utf-7'), fc.uint8Array({ maxLength: 2048 }), async (name, type, bytes) => {
        cases++;
        const form = new FormData();
        form.append('file', new Blob([bytes], { type }), name);
        const res = await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${alice.accessToken}` }, body: form });
        expectContract({ method: 'POST', path: '/api/v1/attachments', success: [201] }, `upload ${JSON.stringify(name)} ${type}`, res.status, await res.text(), res.headers.get('content-type'));
      }),
      { numRuns: RUNS_PER_ROUTE },
    );
  }, 60_000);

  /** Every frame a server may send back, as docs/protocol.md lists them. */
  function expectFrame(frame: any, label: string): void {
    switch (frame.op) {
      case 'error':
        expect(ERROR_CODES.has(frame.code), `${label}: error code ${frame.code}`).toBe(true);
        expect(typeof frame.message).toBe('string');
        return;
      case 'ack':
        expect(frame).toEqual({ op: 'ack', clientMsgId: expect.any(String), messageId: expect.any(String), seq: expect.any(Number) });
        return;
      case 'profile': {
        // The public profile and nothing more (never the e-mail PATCH /users/me answers with).
        const user = { id: expect.any(String), username: expect.any(String), displayName: expect.any(String), bio: expect.any(String), createdAt: expect.any(String) };
        expect(frame).toEqual({ op: 'profile', user: { ...user, avatarUrl: frame.user?.avatarUrl === null ? null : expect.any(String) } });
        return;
      }
      default:
        expect(['pong', 'resumed', 'reset', 'event', 'typing', 'presence', 'authenticated'], `${label}: op ${frame.op}`).toContain(frame.op);
    }
  }

  const frameSamples = (): Record<string, Record<string, unknown>> => ({
    send: { op: 'send', chatId: groupId, clientMsgId: 'fz', body: 'hi', replyTo: messageId, attachmentIds: [] },
    typing: { op: 'typing', chatId },
    read: { op: 'read', chatId: groupId, messageId },
    resume: { op: 'resume', cursors: { [chatId]: 0, [groupId]: 1 } },
    ping: { op: 'ping' },
    auth: { op: 'auth', token: alice.accessToken },
  });

  /** Every message id of a chat's history, all pages. */
  async function historyIds(id: string): Promise<Set<string>> {
    const ids = new Set<string>();
    let cursor: string | null = null;
    do {
      const page: any = (await http(stack, 'GET', `/api/v1/chats/${id}/messages?limit=200${cursor ? `&before=${encodeURIComponent(cursor)}` : ''}`, { token: alice.accessToken })).body;
      for (const m of page.items) ids.add(m.id);
      cursor = page.nextCursor;
    } while (cursor);
    return ids;
  }

  it('answers every frame op on an authenticated socket by the contract, keeps the socket, and stores what it acks', async () => {
    const socket = await TestSocket.open(stack.wsUrl, alice.accessToken);
    const acked = new Map<string, string>();
    let lastMissing: [string, string][] = [];
    for (const [op, sample] of Object.entries(frameSamples())) {
      await fc.assert(
        fc.asyncProperty(fc.oneof({ weight: 8, arbitrary: freshIds(nearValid(sample)).map((f) => JSON.stringify(f)) }, fc.string({ maxLength: 40 }), deepText), async (text) => {
          cases++;
          socket.send(text);
          // Frames are handled in order: after two pongs, every answer to `text` has arrived.
          await socket.sync();
          await socket.sync();
          expect(socket.closed, `${op}: ${text.slice(0, 200)}`).toBeNull();
          for (const frame of socket.frames.splice(0)) {
            expectFrame(frame, `${op}: ${text.slice(0, 200)}`);
            if (frame.op === 'ack') acked.set(frame.messageId, text);
          }
        }),
        { numRuns: RUNS_PER_OP },
      );
    }
    socket.close();
    // An ack means stored (api.md): each acked message reaches history. (A NUL in a body was once
    // acked and then refused by the projection for good.)
    await eventually(async () => {
      const ids = await historyIds(groupId);
      const missing = [...acked].filter(([id]) => !ids.has(id));
      return missing.length === 0 ? true : (lastMissing = missing, undefined);
    }, 15_000, 'acked messages in history').catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(lastMissing.slice(0, 3))}`);
    });
  }, 120_000);

  it('answers any first frame on an unauthenticated socket by the contract (an error, or 4401 for a bad auth)', async () => {
    const sample = frameSamples();
    await fc.assert(
      fc.asyncProperty(fc.oneof(nearValid(sample.auth!), nearValid(sample.send!), fc.jsonValue({ maxDepth: 3 })).map((f) => JSON.stringify(f)), async (text) => {
        cases++;
        const socket = await TestSocket.open(stack.wsUrl);
        socket.send(text);
        socket.send({ op: 'ping' });
        // Either the pong comes (the frame was answered and the socket kept), or the socket closes
        // with 4401 because the frame was a well-formed auth with a bad token.
        await Promise.race([socket.next((f) => f.op === 'pong').catch(() => null), socket.waitClosed()]);
        if (socket.closed) expect(socket.closed.code, text.slice(0, 200)).toBe(4401);
        for (const frame of socket.frames.splice(0)) expectFrame(frame, text.slice(0, 200));
        socket.close();
      }),
      { numRuns: RUNS_PER_OP },
    );
  }, 60_000);

  it('is still up afterwards: every service healthy, and the API answers', async () => {
    for (const port of Object.values(stack.metricsPorts)) expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: alice.accessToken })).status).toBe(200);
    const s = await TestSocket.open(stack.wsUrl, alice.accessToken);
    s.close();
  });
});
