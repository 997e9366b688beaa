import Router from 'find-my-way';
import type { Static, TSchema } from '@sinclair/typebox';
import { compile, inputIssue, type ApiRequest, type ApiResponse, type AuthContext, type SignedRequest, type UserView, type Validator } from '@parley/contracts';
import type { Logger } from '@parley/log';
import { AppError, InvalidRequest, Unauthorized, Unavailable, errorBody } from './errors.js';

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export interface RouteSchemas {
  body?: TSchema;
  query?: TSchema;
  params?: TSchema;
}

type Infer<S, K extends keyof RouteSchemas> = S extends { [P in K]: infer T extends TSchema } ? Static<T> : undefined;

export interface RouteContext<S extends RouteSchemas, A extends boolean> {
  body: Infer<S, 'body'>;
  query: Infer<S, 'query'> extends undefined ? Record<string, string> : Infer<S, 'query'>;
  params: Infer<S, 'params'> extends undefined ? Record<string, string> : Infer<S, 'params'>;
  auth: A extends true ? AuthContext : AuthContext | null;
  request: ApiRequest;
  /** The request as the gateway signed it: proof to pass on when this route asks another service for the user. */
  proof: SignedRequest | null;
}

export interface HandlerResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** See ApiResponse.revokedSessions. */
  revokedSessions?: string[];
  /** See ApiResponse.profileChanged. */
  profileChanged?: UserView;
}

interface Stored {
  url: string;
  authenticated: boolean;
  validators: { [K in keyof RouteSchemas]?: Validator<TSchema> };
  handler: (ctx: RouteContext<RouteSchemas, boolean>) => Promise<HandlerResult>;
}

/**
 * The API side of a service: routes HTTP-shaped requests that arrive over NATS (the gateway only
 * authenticates and forwards). Routing is find-my-way, fastify's router, so path matching behaves
 * exactly as a fastify app would; schemas are TypeBox, so the bus and the API validate alike.
 */
export class ApiRouter {
  private readonly router = Router({ ignoreTrailingSlash: true });

  /**
   * @param storeUnavailable says which errors of the service's own store mean "try again later"
   *   (for Postgres, @parley/pg's isTransientPgError): they become 503, not 500. Passed in so that
   *   this package knows no database and the gateway, which has none, does not depend on one.
   */
  constructor(
    private readonly log: Logger,
    private readonly storeUnavailable: (error: unknown) => boolean,
  ) {}

  route<S extends RouteSchemas, A extends boolean = true>(definition: {
    method: Method;
    url: string;
    schema?: S;
    /** Defaults to true: a route is public only when it says so. */
    authenticated?: A;
    handler: (ctx: RouteContext<S, A>) => Promise<HandlerResult>;
  }): this {
    const validators: Stored['validators'] = {};
    for (const key of ['body', 'query', 'params'] as const) {
      const schema = definition.schema?.[key];
      if (schema) validators[key] = compile(schema);
    }
    const stored: Stored = {
      url: definition.url,
      authenticated: definition.authenticated ?? true,
      validators,
      handler: definition.handler as unknown as Stored['handler'],
    };
    this.router.on(definition.method, definition.url, () => undefined, stored);
    return this;
  }

  async handle(request: ApiRequest, signed: { readonly proof: SignedRequest | null } = { proof: null }): Promise<ApiResponse> {
    const found = this.router.find(request.method.toUpperCase() as Method, request.path);
    if (!found) return { status: 404, body: errorBody('not_found', 'No such route'), route: 'unmatched' };
    const stored = found.store as Stored;
    const route = stored.url;
    try {
      if (stored.authenticated && !request.auth) throw new Unauthorized();
      const params = { ...found.params } as Record<string, string>;
      const input = { params, query: request.query, body: request.body ?? undefined };
      // Before the schemas: text PostgreSQL cannot store (U+0000, also in a decoded path
      // parameter like a reaction's emoji) or absurd nesting is refused whatever the route.
      for (const key of ['params', 'query', 'body'] as const) {
        const issue = inputIssue(input[key]);
        if (issue) throw new InvalidRequest(`Invalid ${key}: ${issue.path} ${issue.message}`, [issue]);
      }
      for (const key of ['params', 'query', 'body'] as const) {
        const validator = stored.validators[key];
        if (!validator) continue;
        const value = key === 'body' && input.body === undefined ? {} : input[key];
        if (!validator.check(value)) {
          const issues = validator.issues(value);
          throw new InvalidRequest(`Invalid ${key}: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, issues);
        }
        if (key === 'body') input.body = value;
      }
      const result = await stored.handler({ ...input, auth: request.auth, request, get proof() { return signed.proof; } } as RouteContext<RouteSchemas, boolean>);
      return { ...result, route };
    } catch (error) {
      return { ...errorResponse(error, this.log, this.storeUnavailable, request), route };
    }
  }
}

/** Maps anything thrown by a handler to the error envelope; unknown errors never leak detail. */
export function errorResponse(error: unknown, log: Logger, storeUnavailable: (error: unknown) => boolean, request?: Pick<ApiRequest, 'requestId'>): HandlerResult {
  if (error instanceof AppError) {
    const headers: Record<string, string> = {};
    const retryAfter = (error as { retryAfterSeconds?: number }).retryAfterSeconds;
    if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
    return { status: error.status, body: error.toBody(), headers };
  }
  log.error({ err: error, requestId: request?.requestId }, 'unhandled error in request handler');
  const unavailable = new Unavailable();
  if (otherServiceUnavailable(error) || storeUnavailable(error)) return { status: 503, body: unavailable.toBody() };
  return { status: 500, body: errorBody('internal', 'Internal error') };
}

/**
 * Failures that say "try again later", not "this request is wrong", and become 503: another
 * service not answering over NATS (here), or the service's store unavailable (the router's
 * `storeUnavailable`: the database unreachable, restarting or refusing connections).
 */
function otherServiceUnavailable(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === 'ServiceUnavailableError' || name === 'RemoteFailureError';
}

