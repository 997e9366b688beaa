// The population: users registered through the API (as clients do), and chats between them in the
// configured mix, also through the API.
import pg from 'pg';
import { sleep } from './system.mjs';

async function api(baseUrl, method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  return { status: response.status, body: parsed };
}

/** Runs `task(i)` for i in [0, n) with at most `concurrency` at once; retries 503/429/network errors. */
async function parallel(n, concurrency, task, onProgress) {
  let next = 0;
  let done = 0;
  const results = new Array(n);
  const runner = async () => {
    while (next < n) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        try {
          results[i] = await task(i);
          break;
        } catch (error) {
          if (!error.retry || attempt >= 8) throw error;
          await sleep(200 * (attempt + 1));
        }
      }
      done += 1;
      onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, runner));
  return results;
}

function failure(what, answer) {
  const error = new Error(`${what}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
  error.retry = answer.status === 503 || answer.status === 429 || answer.status === 0;
  return error;
}

/** Registers `count` users, spread over the gateways' HTTP ports; argon2 makes this the slow part. */
export async function registerUsers({ baseUrls, count, concurrency, runId, onProgress }) {
  return parallel(
    count,
    concurrency,
    async (i) => {
      const username = `b${runId}_${i}`;
      const password = `bench-${runId}-passphrase-${i}`;
      const answer = await api(baseUrls[i % baseUrls.length], 'POST', '/api/v1/auth/register', {
        body: { username, email: `${username}@bench.test`, password },
      }).catch((error) => ({ status: 0, body: error.message }));
      if (answer.status !== 201) throw failure(`register ${username}`, answer);
      return { index: i, id: answer.body.user.id, token: answer.body.accessToken };
    },
    onProgress,
  );
}

/** Deterministic PRNG for the chat layout, so two runs with the same flags get the same shape. */
function prng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

/**
 * The chat layout: `count` chats, `directShare` of them direct, `smallShare` groups of about
 * `smallSize`, the rest groups of about `largeSize` (sizes vary ±25 %). Members are drawn at
 * random, so about half of any chat's members sit on the other gateway (users alternate gateways).
 * Returns member lists of user indexes; the first member creates the chat.
 */
export function planChats({ users, count, directShare, smallShare, smallSize, largeSize, profile = 'default', seed = 42 }) {
  // The pairs profile (issue 21): the 1:1 workload other servers publish figures for. Users in
  // disjoint pairs, one direct chat each, and one sender per pair (the other only receives), so a
  // message is one delivery and no chat has two writers.
  if (profile === 'pairs') return Array.from({ length: Math.floor(users / 2) }, (_, i) => ({ type: 'direct', members: [2 * i, 2 * i + 1], senders: [2 * i] }));
  const random = prng(seed);
  const plan = [];
  const pairs = new Set();
  const nDirect = Math.round(count * directShare);
  const nSmall = Math.round(count * smallShare);
  const pickDistinct = (k) => {
    const chosen = new Set();
    while (chosen.size < Math.min(k, users)) chosen.add(Math.floor(random() * users));
    return [...chosen];
  };
  for (let i = 0; i < nDirect; i++) {
    // One direct chat per pair (the API returns the existing one for a repeat): redraw repeats.
    for (let attempt = 0; ; attempt++) {
      const [a, b] = pickDistinct(2);
      const key = a < b ? `${a}:${b}` : `${b}:${a}`;
      if (!pairs.has(key) || attempt > 50) {
        pairs.add(key);
        plan.push({ type: 'direct', members: [a, b] });
        break;
      }
    }
  }
  const vary = (size) => Math.max(3, Math.round(size * (0.75 + random() * 0.5)));
  for (let i = 0; i < nSmall; i++) plan.push({ type: 'group', members: pickDistinct(vary(smallSize)) });
  for (let i = nDirect + nSmall; i < count; i++) plan.push({ type: 'group', members: pickDistinct(vary(largeSize)) });
  return plan;
}

/** Creates the planned chats through the API; returns [{id, type, members: userIndexes}]. */
export async function createChats({ baseUrls, users, plan, concurrency, onProgress }) {
  const created = await parallel(
    plan.length,
    concurrency,
    async (i) => {
      const chat = plan[i];
      const creator = users[chat.members[0]];
      const body =
        chat.type === 'direct'
          ? { type: 'direct', userId: users[chat.members[1]].id }
          : { type: 'group', title: `bench group ${i}`, memberIds: chat.members.slice(1).map((m) => users[m].id) };
      const answer = await api(baseUrls[i % baseUrls.length], 'POST', '/api/v1/chats', { token: creator.token, body }).catch((error) => ({ status: 0, body: error.message }));
      if (answer.status !== 201 && answer.status !== 200) throw failure(`create chat ${i}`, answer);
      return { id: answer.body.id, type: chat.type, members: chat.members, ...(chat.senders ? { senders: chat.senders } : {}) };
    },
    onProgress,
  );
  // A repeated direct pair returns the same chat: keep one.
  const seen = new Set();
  return created.filter((c) => (seen.has(c.id) ? false : (seen.add(c.id), true)));
}

/** Waits until the projection has every chat membership (sockets load their chats from it). */
export async function waitForMemberships(databaseUrl, chats, timeoutMs = 120_000) {
  const expected = chats.reduce((n, c) => n + c.members.length, 0);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await client.query('SELECT count(*)::int AS n FROM messages.chat_members');
      if (rows[0].n >= expected) return;
      if (Date.now() > deadline) throw new Error(`only ${rows[0].n} of ${expected} chat memberships projected after ${timeoutMs / 1000} s`);
      await sleep(200);
    }
  } finally {
    await client.end();
  }
}
