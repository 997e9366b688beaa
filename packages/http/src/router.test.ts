import { Writable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import type { ApiRequest } from '@parley/contracts';
import { createLogger, type Logger } from '@parley/log';
import { Conflict, Forbidden, RateLimited } from './errors.js';
import { PageQuery } from './pagination.js';
import { ApiRouter } from './router.js';

function capturingLogger(): { log: Logger; lines: () => Record<string, any>[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return {
    log: createLogger({ service: 'test', destination }),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, any>),
  };
}

const AUTH = { userId: 'u-1', sessionId: 's-1' };
const CHAT_ID = '0193a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b';

function request(overrides: Partial<ApiRequest>): ApiRequest {
  return { method: 'GET', path: '/', query: {}, body: null, auth: AUTH, requestId: 'req-1', ip: '127.0.0.1', userAgent: 'test', ...overrides };
}

/** The service's store classifier, as users and messages pass @parley/pg's isTransientPgError. */
const databaseDown = (error: unknown) => (error as { code?: unknown }).code === '57P01';

function buildRouter(log: Logger) {
  const calls: unknown[] = [];
  const router = new ApiRouter(log, databaseDown)
    .route({
      method: 'POST',
      url: '/api/v1/chats/:id/messages',
      schema: {
        params: Type.Object({ id: Type.String({ pattern: '^[0-9a-f-]{36}$' }) }),
        body: Type.Object(
          { clientMsgId: Type.String({ minLength: 1 }), body: Type.String(), silent: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
      },
      handler: async (ctx) => {
        calls.push(ctx);
        return { status: 201, body: { chatId: ctx.params.id, by: ctx.auth.userId, text: ctx.body.body } };
      },
    })
    .route({
      method: 'GET',
      url: '/api/v1/chats/:id/messages',
      schema: { query: Type.Object(PageQuery, { additionalProperties: false }) },
      handler: async (ctx) => ({ status: 200, body: { limit: ctx.query.limit ?? null } }),
    })
    .route({
      method: 'POST',
      url: '/api/v1/auth/login',
      authenticated: false,
      handler: async (ctx) => ({ status: 200, body: { authenticated: ctx.auth !== null, got: ctx.body } }),
    })
    .route({
      method: 'POST',
      url: '/api/v1/auth/logout',
      schema: { body: Type.Object({ everywhere: Type.Optional(Type.Boolean()) }, { additionalProperties: false }) },
      handler: async (ctx) => ({ status: 200, body: { received: ctx.body } }),
    })
    .route({
      method: 'POST',
      url: '/api/v1/auth/register',
      authenticated: false,
      handler: async () => {
        throw new Conflict('username_taken', 'That username is taken');
      },
    })
    .route({
      method: 'POST',
      url: '/api/v1/flood',
      handler: async () => {
        throw new RateLimited(7);
      },
    })
    .route({
      method: 'GET',
      url: '/api/v1/forbidden',
      handler: async () => {
        throw new Forbidden();
      },
    })
    .route({
      method: 'GET',
      url: '/api/v1/boom',
      handler: async () => {
        throw new Error('password=hunter2 in SELECT * FROM users.secret_table');
      },
    })
    .route({
      method: 'GET',
      url: '/api/v1/db-down',
      handler: async () => {
        throw Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
      },
    });
  return { router, calls };
}

describe('ApiRouter', () => {
  it('answers an unknown path, or a known path with another method, with the 404 envelope', async () => {
    const { router } = buildRouter(capturingLogger().log);
    for (const req of [request({ path: '/api/v1/nothing' }), request({ method: 'DELETE', path: '/api/v1/auth/login' })]) {
      expect(await router.handle(req)).toEqual({
        status: 404,
        body: { error: { code: 'not_found', message: 'No such route' } },
        route: 'unmatched',
      });
    }
  });

  it('returns the handler result with the matched route template, never the raw path', async () => {
    const { router, calls } = buildRouter(capturingLogger().log);
    const response = await router.handle(
      request({ method: 'post', path: `/api/v1/chats/${CHAT_ID}/messages/`, body: { clientMsgId: 'k', body: 'hi' } }),
    );
    expect(response).toEqual({
      status: 201,
      body: { chatId: CHAT_ID, by: 'u-1', text: 'hi' },
      route: '/api/v1/chats/:id/messages',
    });
    expect(calls).toHaveLength(1);
  });

  it('refuses an authenticated route without auth (401), before validating or running the handler', async () => {
    const { router, calls } = buildRouter(capturingLogger().log);
    const response = await router.handle(
      request({ method: 'POST', path: `/api/v1/chats/${CHAT_ID}/messages`, auth: null, body: { nonsense: true } }),
    );
    expect(response).toEqual({
      status: 401,
      body: { error: { code: 'unauthorized', message: 'Authentication required' } },
      headers: {},
      route: '/api/v1/chats/:id/messages',
    });
    expect(calls).toHaveLength(0);
  });

  it('runs a public route without auth', async () => {
    const { router } = buildRouter(capturingLogger().log);
    const response = await router.handle(request({ method: 'POST', path: '/api/v1/auth/login', auth: null, body: { login: 'a' } }));
    expect(response).toMatchObject({ status: 200, body: { authenticated: false, got: { login: 'a' } }, route: '/api/v1/auth/login' });
  });

  it('answers a body with an unknown field with 400 invalid_request and details', async () => {
    const { router, calls } = buildRouter(capturingLogger().log);
    const response = await router.handle(
      request({ method: 'POST', path: `/api/v1/chats/${CHAT_ID}/messages`, body: { clientMsgId: 'k', body: 'hi', admin: true } }),
    );
    expect(response.status).toBe(400);
    expect(response.route).toBe('/api/v1/chats/:id/messages');
    const error = (response.body as any).error;
    expect(error.code).toBe('invalid_request');
    expect(error.message).toMatch(/^Invalid body:/);
    expect(error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: '/admin' })]));
    expect(calls).toHaveLength(0);
  });

  it('answers a body field of the wrong type or a missing field with 400 naming the field', async () => {
    const { router } = buildRouter(capturingLogger().log);
    const wrongType = await router.handle(
      request({ method: 'POST', path: `/api/v1/chats/${CHAT_ID}/messages`, body: { clientMsgId: 'k', body: 42 } }),
    );
    expect(wrongType.status).toBe(400);
    expect((wrongType.body as any).error.details).toEqual([{ path: '/body', message: 'Expected string' }]);

    const missing = await router.handle(request({ method: 'POST', path: `/api/v1/chats/${CHAT_ID}/messages`, body: null }));
    expect(missing.status).toBe(400);
    const paths = (missing.body as any).error.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['/clientMsgId', '/body']));

    const notAnObject = await router.handle(request({ method: 'POST', path: `/api/v1/chats/${CHAT_ID}/messages`, body: ['x'] }));
    expect(notAnObject.status).toBe(400);
  });

  it('validates a missing body as an empty object when the schema allows it', async () => {
    const { router } = buildRouter(capturingLogger().log);
    const response = await router.handle(request({ method: 'POST', path: '/api/v1/auth/logout', body: null }));
    expect(response).toMatchObject({ status: 200, body: { received: {} } });
  });

  it('validates path params', async () => {
    const { router, calls } = buildRouter(capturingLogger().log);
    const response = await router.handle(
      request({ method: 'POST', path: '/api/v1/chats/not-a-uuid/messages', body: { clientMsgId: 'k', body: 'hi' } }),
    );
    expect(response.status).toBe(400);
    expect((response.body as any).error.code).toBe('invalid_request');
    expect((response.body as any).error.message).toMatch(/^Invalid params:/);
    expect((response.body as any).error.details[0].path).toBe('/id');
    expect(calls).toHaveLength(0);
  });

  it('validates the query string', async () => {
    const { router } = buildRouter(capturingLogger().log);
    const path = `/api/v1/chats/${CHAT_ID}/messages`;
    expect(await router.handle(request({ path, query: { limit: '20' } }))).toMatchObject({ status: 200, body: { limit: '20' } });
    const bad = await router.handle(request({ path, query: { limit: 'lots' } }));
    expect(bad.status).toBe(400);
    expect((bad.body as any).error.details[0].path).toBe('/limit');
    const unknown = await router.handle(request({ path, query: { sort: 'asc' } }));
    expect(unknown.status).toBe(400);
  });

  it('maps a thrown Conflict to 409 with its code', async () => {
    const { router } = buildRouter(capturingLogger().log);
    const response = await router.handle(request({ method: 'POST', path: '/api/v1/auth/register', auth: null }));
    expect(response).toMatchObject({
      status: 409,
      body: { error: { code: 'username_taken', message: 'That username is taken' } },
      route: '/api/v1/auth/register',
    });
  });

  it('maps other AppErrors to their status and code', async () => {
    const { router } = buildRouter(capturingLogger().log);
    const response = await router.handle(request({ path: '/api/v1/forbidden' }));
    expect(response).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
  });

  it('maps RateLimited to 429 with a retry-after header', async () => {
    const { router } = buildRouter(capturingLogger().log);
    const response = await router.handle(request({ method: 'POST', path: '/api/v1/flood' }));
    expect(response).toEqual({
      status: 429,
      body: { error: { code: 'rate_limited', message: 'Too many requests' } },
      headers: { 'retry-after': '7' },
      route: '/api/v1/flood',
    });
  });

  it('answers an unexpected error with a bare 500 internal, logging it with the request id', async () => {
    const { log, lines } = capturingLogger();
    const { router } = buildRouter(log);
    const response = await router.handle(request({ path: '/api/v1/boom', requestId: 'req-boom' }));
    expect(response).toEqual({
      status: 500,
      body: { error: { code: 'internal', message: 'Internal error' } },
      route: '/api/v1/boom',
    });
    expect(JSON.stringify(response)).not.toMatch(/hunter2|secret_table|stack/);
    const logged = lines().find((l) => l.msg === 'unhandled error in request handler');
    expect(logged).toMatchObject({ level: 'error', requestId: 'req-boom' });
  });

  it('answers an outage of the store (as the service classifies its errors) with 503 unavailable, not 500', async () => {
    const { router } = buildRouter(capturingLogger().log);
    const response = await router.handle(request({ path: '/api/v1/db-down' }));
    expect(response).toMatchObject({ status: 503, body: { error: { code: 'unavailable' } }, route: '/api/v1/db-down' });
    expect(JSON.stringify(response)).not.toContain('administrator');
  });
});
