import { NoRespondersError, TimeoutError, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { RPC_SIGNED, rpcValidator, subjects, type RpcMethod, type RpcMethods, type ServiceName, type SignedRequest } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import { headersWithTrace, inSpan, SpanKind } from './trace.js';
import { endOfTurn } from './turn.js';
import { ASSERTION_HEADER, type RequestSigner, type RequestVerifier } from './assertion.js';
import { respondJson, wholeAnswer } from './answer-parts.js';
import { failureOf, InvalidRequestError, RemoteFailureError, RequestRefusedError, RequestTooLargeError, respondFailure, ServiceUnavailableError } from './rpc-failure.js';

/** What makes requests: a connection, and for the gateway the key it signs requests for users with. */
export interface RpcClient {
  nc: NatsConnection;
  signer?: RequestSigner | undefined;
}

/** What a request handler learns besides the payload: the signed request, when it was signed. */
export interface RequestContext {
  proof: SignedRequest | null;
}

/**
 * Answers JSON requests on `subject` in queue group `queue`, so replicas of a service share the
 * load and each request is handled once. The handler's errors must already be mapped to answers,
 * but for RequestRefusedError and InvalidRequestError (answered as such, rpc-failure.ts); anything
 * else that escapes is logged and answered with a generic failure.
 */
export function serveRequests(
  nc: NatsConnection,
  subject: string,
  queue: string,
  handler: (payload: unknown, context: RequestContext) => Promise<unknown>,
  log: Logger,
  metrics?: Metrics,
  /** When given, requests without a valid gateway signature are refused (see assertion.ts). */
  verifier?: RequestVerifier,
  /** Where this process serves the parts of answers too large for one reply (answer-parts.ts); without it they fail. */
  partsPrefix?: string,
): Subscription {
  const inFlight = new Set<Promise<void>>();
  let refusalsLogged = 0;
  let invalidLogged = 0;
  const sub = nc.subscribe(subject, {
    queue,
    callback: (err, msg) => {
      if (err) {
        log.error({ err, subject }, 'request subscription failed');
        return;
      }
      const work = inSpan(`serve ${subject}`, msg.headers, SpanKind.SERVER, async () => {
        let signed: { assertion: string } | null = null;
        if (verifier) {
          const assertion = msg.headers?.get(ASSERTION_HEADER) || undefined;
          const problem = verifier.check(msg.subject, assertion, msg.data);
          if (problem) {
            metrics?.rpcRequests.inc({ subject, outcome: 'refused' });
            // Bounded: a flood of forged requests must not become a flood of log lines.
            if (refusalsLogged++ < 100) log.warn({ subject, problem }, 'request refused: no valid gateway signature');
            respondFailure(msg, 'refused', 'Request refused');
            return;
          }
          signed = { assertion: assertion! };
        }
        // The proof is built only if a handler passes it on (messages.export): most never do.
        const context: RequestContext = {
          get proof() {
            return signed ? { subject: msg.subject, assertion: signed.assertion, payload: Buffer.from(msg.data).toString('base64') } : null;
          },
        };
        try {
          const answer = await handler(parsed(msg), context);
          metrics?.rpcRequests.inc({ subject, outcome: 'ok' });
          respondJson(nc, msg, JSON.stringify(answer), partsPrefix);
        } catch (error) {
          if (error instanceof RequestRefusedError) {
            metrics?.rpcRequests.inc({ subject, outcome: 'refused' });
            respondFailure(msg, 'refused', 'Request refused');
            return;
          }
          if (error instanceof InvalidRequestError) {
            metrics?.rpcRequests.inc({ subject, outcome: 'invalid' });
            // Bounded, and never the payload (it may hold a password or a message body): the
            // subject and where the request went wrong. The caller gets the schema's complaint.
            if (invalidLogged++ < 100) log.warn({ subject, path: error.path.slice(0, 100) }, 'request refused: invalid');
            respondFailure(msg, 'invalid', `Invalid request: ${error.message}`);
            return;
          }
          log.error({ err: error, subject }, 'request handler failed');
          metrics?.rpcRequests.inc({ subject, outcome: 'error' });
          // Never the error's message (the services framework sends it): it may name tables or data.
          respondFailure(msg, 'internal', 'Internal error');
        }
      }).catch(() => {});
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
    },
  });
  return sub;
}

function parsed(msg: Msg): unknown {
  try {
    return msg.json();
  } catch {
    throw new InvalidRequestError('not JSON');
  }
}

/**
 * Sends a JSON request and returns the JSON answer; no responder or a timeout is ServiceUnavailableError.
 * Requests made in one event-loop turn leave in one socket write (turn.ts).
 */
export async function requestJson<T>(client: RpcClient, subject: string, payload: unknown, timeoutMs = 5_000, options: { sign?: boolean } = {}): Promise<T> {
  await endOfTurn();
  return requestJsonNow<T>(client, subject, payload, timeoutMs, options);
}

/**
 * requestJson for a caller already at the end of its turn (one that batches per turn itself).
 * `sign`: the request acts for a user, so it carries the client's signature (only the gateway has a signer).
 */
export async function requestJsonNow<T>(client: RpcClient, subject: string, payload: unknown, timeoutMs = 5_000, options: { sign?: boolean } = {}): Promise<T> {
  const headers = headersWithTrace();
  let data: string | Buffer = JSON.stringify(payload);
  if (options.sign) {
    if (!client.signer) throw new Error(`${subject} acts for a user and needs the gateway's signature; this process has no signing key`);
    // Signed and sent as the same bytes.
    data = Buffer.from(data);
    headers.set(ASSERTION_HEADER, client.signer.assert(subject, data));
  }
  let reply: Msg;
  try {
    reply = await client.nc.request(subject, data, { timeout: timeoutMs, headers });
  } catch (error) {
    if (error instanceof NoRespondersError || error instanceof TimeoutError || noAnswer(error)) {
      throw new ServiceUnavailableError(`no answer on ${subject}`, { cause: error });
    }
    if (/max_payload/.test(String((error as Error)?.message))) throw new RequestTooLargeError(`request on ${subject} larger than the server's max_payload`, { cause: error });
    throw error;
  }
  const failure = failureOf(reply, subject);
  if (failure) throw failure;
  const answer = await wholeAnswer(client.nc, reply, timeoutMs);
  return (answer === reply.data ? reply.json<T>() : JSON.parse(Buffer.from(answer).toString())) as T;
}

/** No responders or a timeout, anywhere in the causes. */
function noAnswer(error: unknown): boolean {
  const e = error as { name?: string; message?: string; cause?: unknown };
  return /no responders|timeout/i.test(`${e?.name} ${e?.message}`) || (e?.cause !== undefined && noAnswer(e.cause));
}

/**
 * Calls an internal method by its RpcMethods name ("users.existing"): the subject, the request and
 * the answer's type all follow from the name, so callers cannot pair a method with the wrong shape.
 * The answer is checked against the method's reply schema (contracts RPC_SCHEMAS).
 */
export function callRpc<M extends RpcMethod>(
  client: RpcClient,
  namespace: string,
  method: M,
  req: RpcMethods[M]['req'],
  timeoutMs?: number,
): Promise<RpcMethods[M]['res']> {
  return endOfTurn().then(() => callRpcNow(client, namespace, method, req, timeoutMs));
}

/** callRpc for a caller already at the end of its turn (one that batches per turn itself). */
export async function callRpcNow<M extends RpcMethod>(
  client: RpcClient,
  namespace: string,
  method: M,
  req: RpcMethods[M]['req'],
  timeoutMs?: number,
): Promise<RpcMethods[M]['res']> {
  const [service, name] = method.split('.') as [ServiceName, string];
  const subject = subjects.rpc(namespace, service, name);
  // Methods the gateway calls for a user carry its signature (contracts RPC_SIGNED).
  const answer = await requestJsonNow<unknown>(client, subject, req, timeoutMs, { sign: RPC_SIGNED.has(method) });
  const reply = rpcValidator(method, 'res');
  if (reply.check(answer)) return answer as RpcMethods[M]['res'];
  // A responder answering outside its contract (another version, or a bug) has failed, like one
  // that threw: its answer is not passed on as typed garbage. Only the path, never the values.
  const issue = reply.issues(answer, 1)[0];
  throw new RemoteFailureError(`${subject} answered outside its reply schema: ${issue?.path} ${issue?.message}`);
}

/** What a service serves: a handler for each of its methods, given the request its schema accepted. */
export type RpcHandlers<S extends ServiceName> = {
  [M in RpcMethod as M extends `${S}.${infer Name}` ? Name : never]: (req: RpcMethods[M]['req'], context: RequestContext) => Promise<RpcMethods[M]['res']>;
};

/**
 * Serves every handler of `handlers` as `<ns>.rpc.<service>.<name>` in the service's queue group.
 * A request that does not match its method's request schema never reaches the handler: it is
 * answered as invalid (InvalidRequestError at the caller). Signed methods check the signature first.
 */
export function serveRpc<S extends ServiceName>(
  nc: NatsConnection,
  namespace: string,
  service: S,
  handlers: RpcHandlers<S>,
  log: Logger,
  metrics: Metrics | undefined,
  verifier: RequestVerifier,
): Subscription[] {
  const entries = Object.entries(handlers) as [string, (req: unknown, context: RequestContext) => Promise<unknown>][];
  return entries.map(([name, handler]) => {
    const method = `${service}.${name}` as RpcMethod;
    const request = rpcValidator(method, 'req');
    const verifies = RPC_SIGNED.has(method) ? verifier : undefined;
    const checked = (payload: unknown, context: RequestContext) => {
      if (!request.check(payload)) {
        const issue = request.issues(payload, 1)[0];
        throw new InvalidRequestError(`${issue?.path} ${issue?.message}`, issue?.path);
      }
      return handler(payload, context);
    };
    return serveRequests(nc, subjects.rpc(namespace, service, name), service, checked, log, metrics, verifies, subjects.parts(namespace, service));
  });
}
