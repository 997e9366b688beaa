import { headers as natsHeaders, NoRespondersError, TimeoutError, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { RPC_SIGNED, subjects, type RpcMethod, type RpcMethods, type ServiceName } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import { headersWithTrace, inSpan, SpanKind } from './trace.js';
import { endOfTurn } from './turn.js';
import type { SignedRequest } from '@parley/contracts';
import { ASSERTION_HEADER, type RequestSigner, type RequestVerifier } from './assertion.js';

/** What makes requests: a connection, and for the gateway the key it signs requests for users with. */
export interface RpcClient {
  nc: NatsConnection;
  signer?: RequestSigner | undefined;
}

/** What a request handler learns besides the payload: the signed request, when it was signed. */
export interface RequestContext {
  proof: SignedRequest | null;
}


/** A request found nobody to answer it, or nobody answered in time: the caller answers 503. */
export class ServiceUnavailableError extends Error {
  override name = 'ServiceUnavailableError';
}

/** The responder failed while handling the request (it said so in the reply's headers). */
export class RemoteFailureError extends ServiceUnavailableError {
  override name = 'RemoteFailureError';
}

/** The responder refused the request: it was not signed, or not for this subject (never retried). */
export class RequestRefusedError extends Error {
  override name = 'RequestRefusedError';
}

/** Header that marks a reply as a failure, so a caller never mistakes an error body for a result. */
const FAILURE_HEADER = 'Parley-Failure';

/**
 * Answers JSON requests on `subject` in queue group `queue`, so replicas of a service share the
 * load and each request is handled once. The handler's errors must already be mapped to answers;
 * anything that still escapes is logged and answered with a generic failure.
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
): Subscription {
  const inFlight = new Set<Promise<void>>();
  let refusalsLogged = 0;
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
            respondFailure(msg, 'refused');
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
          const answer = await handler(msg.json(), context);
          metrics?.rpcRequests.inc({ subject, outcome: 'ok' });
          msg.respond(JSON.stringify(answer));
        } catch (error) {
          if (error instanceof RequestRefusedError) {
            metrics?.rpcRequests.inc({ subject, outcome: 'refused' });
            respondFailure(msg, 'refused');
            return;
          }
          log.error({ err: error, subject }, 'request handler failed');
          metrics?.rpcRequests.inc({ subject, outcome: 'error' });
          respondFailure(msg, 'internal');
        }
      }).catch(() => {});
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
    },
  });
  return sub;
}

function respondFailure(msg: Msg, kind: 'internal' | 'refused'): void {
  const h = natsHeaders();
  h.set(FAILURE_HEADER, kind);
  msg.respond(JSON.stringify({ error: { code: kind, message: kind === 'refused' ? 'Request refused' : 'Internal error' } }), { headers: h });
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
  try {
    const reply = await client.nc.request(subject, data, { timeout: timeoutMs, headers });
    const failure = reply.headers?.get(FAILURE_HEADER);
    if (failure === 'refused') throw new RequestRefusedError(`${subject} refused the request (signature)`);
    if (failure) throw new RemoteFailureError(`${subject} failed on the responder`);
    return reply.json<T>();
  } catch (error) {
    if (error instanceof RemoteFailureError || error instanceof RequestRefusedError) throw error;
    if (error instanceof NoRespondersError || error instanceof TimeoutError || isNoResponders(error)) {
      throw new ServiceUnavailableError(`no answer on ${subject}`, { cause: error });
    }
    throw error;
  }
}

function isNoResponders(error: unknown): boolean {
  const e = error as { name?: string; message?: string; cause?: unknown };
  return /no responders|timeout/i.test(`${e?.name} ${e?.message}`) || (e?.cause !== undefined && isNoResponders(e.cause));
}

/**
 * Calls an internal method by its RpcMethods name ("users.existing"): the subject, the request and
 * the answer's type all follow from the name, so callers cannot pair a method with the wrong shape.
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
export function callRpcNow<M extends RpcMethod>(
  client: RpcClient,
  namespace: string,
  method: M,
  req: RpcMethods[M]['req'],
  timeoutMs?: number,
): Promise<RpcMethods[M]['res']> {
  const [service, name] = method.split('.') as [ServiceName, string];
  // Methods the gateway calls for a user carry its signature (contracts RPC_SIGNED).
  return requestJsonNow<RpcMethods[M]['res']>(client, subjects.rpc(namespace, service, name), req, timeoutMs, { sign: RPC_SIGNED.has(method) });
}

/** Serves every handler of `handlers` as `<ns>.rpc.<service>.<name>` in the service's queue group. */
export function serveRpc(
  nc: NatsConnection,
  namespace: string,
  service: ServiceName,
  handlers: Record<string, (req: never, context: RequestContext) => Promise<unknown>>,
  log: Logger,
  metrics: Metrics | undefined,
  verifier: RequestVerifier,
): Subscription[] {
  return Object.entries(handlers).map(([name, handler]) => {
    const method = `${service}.${name}` as RpcMethod;
    const verifies = RPC_SIGNED.has(method) ? verifier : undefined;
    return serveRequests(nc, subjects.rpc(namespace, service, name), service, (req, context) => handler(req as never, context), log, metrics, verifies);
  });
}
