import { STATUS_CODES } from 'node:http';
import { context, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { RequestTooLargeError, requestJson, ServiceUnavailableError, type Bus } from '@parley/bus';
import { inputIssue, newId, subjects, type ApiRequest, type ApiResponse, type ErrorBody, type UserView } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import type { Authenticate } from '../auth/authenticator.js';
import { normaliseAddress } from './client-address.js';
import { endWith } from './end.js';
import { isJsonMediaType } from './media-type.js';
import { isPublic, ownerOf, timeoutOf } from './routing.js';

export interface ApiHandlerDeps {
  bus: Bus;
  namespace: string;
  authenticate: Authenticate;
  /** Applies a revocation carried by a service's answer (RevocationList.add). */
  revoke: (sessionId: string) => void;
  log: Logger;
  metrics: Metrics;
  bodyLimit: number;
  serviceTimeoutMs: number;
  /** Resolves the client address from the socket peer and X-Forwarded-For (trusted proxies only). */
  clientAddress: (remote: string, forwardedFor: string) => string;
  /** REQUIRE_VERIFIED_EMAIL: refuse starting chats and adding contacts until the address is verified. */
  requireVerifiedEmail: boolean;
  /** A service's answer says the caller's public profile changed (ApiResponse.profileChanged): tell who sees them (Profiles.changed). */
  profileChanged?: (user: UserView) => void;
}

/** What an account with an unverified address may not do when the operator requires verification. */
const NEEDS_VERIFIED_EMAIL = new Set(['POST /api/v1/chats', 'POST /api/v1/contacts']);

const METHODS_WITH_BODY = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

const tracer = trace.getTracer('parley-gateway');

/**
 * uWebSockets.js is not node:http, so no automatic instrumentation sees these requests: this is
 * the HTTP server span an instrumented server would make, with the route the owning service
 * matched (a template, so span names stay few). The path only, never the query string or a header.
 */
function startRequestSpan(method: string, path: string): Span {
  return tracer.startSpan(method, {
    kind: SpanKind.SERVER,
    attributes: { 'http.request.method': method, 'url.path': path, 'url.scheme': 'http' },
  });
}

function endRequestSpan(span: Span, method: string, route: string, status: number | null): void {
  if (route !== 'unmatched') {
    span.setAttribute('http.route', route);
    span.updateName(`${method} ${route}`);
  }
  if (status === null) span.setStatus({ code: SpanStatusCode.ERROR, message: 'aborted by the client' });
  else {
    span.setAttribute('http.response.status_code', status);
    if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

function envelope(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/**
 * The HTTP side of the gateway: parse, authenticate, forward to the owning service over NATS
 * request/reply, write the answer. It never interprets a route beyond who owns it.
 * uWebSockets.js rules that shape this code: the request object is only valid synchronously
 * (read every header first), and an aborted response must never be written to.
 */
export function apiHandler(deps: ApiHandlerDeps) {
  return (res: HttpResponse, req: HttpRequest): void => {
    const started = process.hrtime.bigint();
    const method = req.getMethod().toUpperCase();
    const path = req.getUrl();
    const rawQuery = req.getQuery() ?? '';
    const authorization = req.getHeader('authorization');
    const contentLength = Number.parseInt(req.getHeader('content-length') || '0', 10) || 0;
    const contentType = req.getHeader('content-type');
    const userAgent = req.getHeader('user-agent').slice(0, 256);
    const forwardedFor = req.getHeader('x-forwarded-for');
    const ip = deps.clientAddress(normaliseAddress(Buffer.from(res.getRemoteAddressAsText()).toString()), forwardedFor);
    const state = { aborted: false, route: 'unmatched', requestBytes: 0, traced: true };
    const span = startRequestSpan(method, path);
    const traced = trace.setSpan(context.active(), span);
    const finishSpan = (status: number | null) => {
      if (!state.traced) return;
      state.traced = false;
      endRequestSpan(span, method, state.route, status);
    };
    res.onAborted(() => {
      state.aborted = true;
      finishSpan(null);
    });

    const reply = (response: { status: number; body?: unknown; headers?: Record<string, string> }) => {
      if (state.aborted) return;
      finishSpan(response.status);
      const payload = response.body === undefined || response.status === 204 ? '' : JSON.stringify(response.body);
      res.cork(() => {
        res.writeStatus(`${response.status} ${STATUS_CODES[response.status] ?? ''}`);
        for (const [k, v] of Object.entries(response.headers ?? {})) res.writeHeader(k, v);
        // API answers carry tokens and personal data: no cache, shared or private, may keep them
        // (issue 23, finding 10).
        if (!response.headers?.['cache-control']) res.writeHeader('cache-control', 'no-store');
        if (payload) res.writeHeader('content-type', 'application/json; charset=utf-8');
        // HEAD: the GET answer's headers and length, never its body (end.ts).
        endWith(res, method === 'HEAD', payload);
      });
      const labels = { method, route: state.route, status_code: String(response.status) };
      deps.metrics.httpRequestsTotal.inc(labels);
      deps.metrics.httpRequestDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
      deps.metrics.httpRequestSize.observe(labels, state.requestBytes);
      deps.metrics.httpResponseSize.observe(labels, Buffer.byteLength(payload));
    };

    // A fragment never belongs in a request target (RFC 9112 3.2), and the services' router ends
    // the path at it: `/api/v1/chats/#` was routed as `/api/v1/chats`, past the gateway's rules.
    if (path.includes('#')) {
      reply({ status: 400, body: envelope('invalid_request', 'The request target may not contain "#"') });
      return;
    }
    const service = ownerOf(path);
    if (!service) {
      reply({ status: 404, body: envelope('not_found', 'No such route') });
      return;
    }
    if (contentLength > deps.bodyLimit) {
      reply({ status: 413, body: envelope('payload_too_large', `Body larger than ${deps.bodyLimit} bytes`) });
      return;
    }

    const forward = async (raw: Buffer | null) => {
      let body: unknown = null;
      if (raw && raw.length > 0) {
        if (!isJsonMediaType(contentType)) {
          // 400 invalid_request, not 415: api.md's error list is the contract clients are written against.
          reply({ status: 400, body: envelope('invalid_request', 'Send the body as JSON, with Content-Type: application/json') });
          return;
        }
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          reply({ status: 400, body: envelope('invalid_request', 'Malformed JSON body') });
          return;
        }
      }
      // Checked here, not only in the service: forwarding re-serialises the body, and
      // JSON.stringify of a body thousands of levels deep overflows the stack (a 503 and an error
      // log for what is simply bad input). See inputIssue.
      const issue = inputIssue(body);
      if (issue) {
        reply({ status: 400, body: { error: { code: 'invalid_request', message: `Invalid body: ${issue.path} ${issue.message}`, details: [issue] } } });
        return;
      }
      const token = /^Bearer (.+)$/i.exec(authorization)?.[1];
      const claims = token ? await deps.authenticate(token) : null;
      if (!claims && !isPublic(method, path)) {
        reply({ status: 401, body: envelope('unauthorized', 'Missing or invalid access token') });
        return;
      }
      if (claims && deps.requireVerifiedEmail && !claims.emailVerified && NEEDS_VERIFIED_EMAIL.has(`${method} ${path.replace(/\/$/, '')}`)) {
        reply({ status: 403, body: envelope('email_unverified', 'Confirm your e-mail address first (the link is in the mail we sent); then sign in again or refresh') });
        return;
      }
      const apiRequest: ApiRequest = {
        // HEAD is GET without the body (RFC 9110 9.3.2): the services route GET, reply() drops the body.
        method: method === 'HEAD' ? 'GET' : method,
        path,
        query: Object.fromEntries(new URLSearchParams(rawQuery)),
        body,
        auth: claims && { userId: claims.userId, sessionId: claims.sessionId },
        requestId: newId(),
        ip,
        userAgent,
      };
      try {
        // Signed: the services act on the claims and client address in it only with the gateway's signature.
        const timeoutMs = timeoutOf(apiRequest.method, path, deps.serviceTimeoutMs);
        const answer = await requestJson<ApiResponse>(deps.bus, subjects.api(deps.namespace, service), apiRequest, timeoutMs, { sign: true });
        state.route = answer.route;
        for (const sessionId of answer.revokedSessions ?? []) deps.revoke(sessionId);
        reply({ status: answer.status, body: answer.body, ...(answer.headers ? { headers: answer.headers } : {}) });
        // After the reply, so the caller never waits for it; only the caller's own profile, on success.
        if (answer.status === 200 && answer.profileChanged && answer.profileChanged.id === claims?.userId) deps.profileChanged?.(answer.profileChanged);
      } catch (error) {
        if (error instanceof RequestTooLargeError) {
          reply({ status: 413, body: envelope('payload_too_large', 'The request body is too large') });
          return;
        }
        if (!(error instanceof ServiceUnavailableError)) deps.log.error({ err: error, service }, 'forwarding failed');
        reply({ status: 503, body: envelope('unavailable', `The ${service} service is not answering; try again`) });
      }
    };

    // Authentication and the NATS request run inside the span, so the owning service's work (its
    // SQL and Redis spans) joins this trace through the request's headers.
    const handle = (raw: Buffer | null) => context.with(traced, () => forward(raw));

    if (!METHODS_WITH_BODY.has(method)) {
      void handle(null);
      return;
    }
    readBody(res, deps.bodyLimit, (raw) => {
      state.requestBytes = raw?.length ?? 0;
      if (raw === null) reply({ status: 413, body: envelope('payload_too_large', `Body larger than ${deps.bodyLimit} bytes`) });
      else void handle(raw);
    });
  };
}

/** Collects the request body; null when it exceeds `limit` (the rest is ignored). */
function readBody(res: HttpResponse, limit: number, done: (body: Buffer | null) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let overflow = false;
  res.onData((chunk, isLast) => {
    if (!overflow) {
      size += chunk.byteLength;
      if (size > limit) overflow = true;
      // uWS reuses the chunk's memory after this callback returns: copy it.
      else chunks.push(Buffer.from(chunk.slice(0)));
    }
    if (isLast) done(overflow ? null : Buffer.concat(chunks));
  });
}
