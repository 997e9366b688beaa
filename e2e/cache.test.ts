import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheKeyFrom, seal } from '@parley/cache';
import { DEV_CACHE_KEY } from '@parley/config';
import { http, readCached, register, startStack, TestSocket, type Stack } from './stack.js';

describe('Redis is a cache: used when there, never needed', () => {
  let stack: Stack;
  let redis: Redis;
  beforeAll(async () => {
    stack = await startStack({ REDIS_USER_TTL: '120' });
    redis = new Redis(stack.env.redisUrl);
  });
  afterAll(async () => {
    redis?.disconnect();
    await stack?.stop();
  });

  it('caches public profiles under the namespace with the configured TTL', async () => {
    const a = await register(stack, 'cachea');
    const b = await register(stack, 'cacheb');
    const key = `${stack.env.namespace}:user:${a.id}`;
    expect(await redis.exists(key)).toBe(0);
    const first = await http(stack, 'GET', `/api/v1/users/${a.id}`, { token: b.accessToken });
    expect(first.status).toBe(200);
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(100);
    expect(ttl).toBeLessThanOrEqual(120);
    expect(await readCached(redis, key)).toEqual(first.body);
    // Served from the cache: a value sealed with the services' key is what the client gets.
    await redis.set(key, seal(cacheKeyFrom(DEV_CACHE_KEY), key, { ...first.body, displayName: 'from-cache' }, 60), 'EX', 60);
    const second = await http(stack, 'GET', `/api/v1/users/${a.id}`, { token: b.accessToken });
    expect(second.body.displayName).toBe('from-cache');
  });
});

describe('with Redis unreachable', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Nothing listens on this port: every cache call fails, every feature must still work.
    stack = await startStack({ REDIS_URL: 'redis://127.0.0.1:6399' });
  });
  afterAll(async () => stack?.stop());

  it('registers, logs in, chats and reads profiles from Postgres, and stays ready', async () => {
    const a = await register(stack, 'noredisa');
    const b = await register(stack, 'noredisb');
    const login = await http(stack, 'POST', '/api/v1/auth/login', { body: { login: 'noredisa', password: a.password } });
    expect(login.status).toBe(200);
    const profile = await http(stack, 'GET', `/api/v1/users/${b.id}`, { token: a.accessToken });
    expect(profile.status).toBe(200);
    const chat = await http(stack, 'POST', '/api/v1/chats', { token: a.accessToken, body: { type: 'direct', userId: b.id } });
    expect(chat.status).toBe(201);
    const socket = await TestSocket.open(stack.wsUrl, a.accessToken);
    socket.send({ op: 'send', chatId: chat.body.id, clientMsgId: '1', body: 'no cache needed' });
    expect(await socket.next((f) => f.op === 'ack')).toMatchObject({ seq: 2 });
    socket.close();
    const ready = await fetch(`http://127.0.0.1:${stack.metricsPorts.users}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ checks: { redis: 'down', postgres: 'ok', nats: 'ok' } });
  });
});
