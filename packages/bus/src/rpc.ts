import { headers as natsHeaders, NoRespondersError, TimeoutError, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { subjects, type RpcMethod, type RpcMethods, type ServiceName } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import { headersWithTrace, inSpan, SpanKind } from './trace.js';
import { endOfTurn } from './turn.js';

/** A request found nobody to answer it, or nobody answered in time: the caller answers 503. */
export class ServiceUnavailableError extends Error {
  override name = 'ServiceUnavailableError';
}

/** The responder failed while handling the request (it said so in the reply's headers). */
export class RemoteFailureError extends ServiceUnavailableError {
  override name = 'RemoteFailureError';
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
  handler: (payload: unknown) => Promise<unknown>,
  log: Logger,
  metrics?: Metrics,
): Subscription {
  const inFlight = new Set<Promise<void>>();
  const sub = nc.subscribe(subject, {
    queue,
    callback: (err, msg) => {
      if (err) {
        log.error({ err, subject }, 'request subscription failed');
        return;
      }
      const work = inSpan(`serve ${subject}`, msg.headers, SpanKind.SERVER, async () => {
        try {
          const answer = await handler(msg.json());
          metrics?.rpcRequests.inc({ subject, outcome: 'ok' });
          msg.respond(JSON.stringify(answer));
        } catch (error) {
          log.error({ err: error, subject }, 'request handler failed');
          metrics?.rpcRequests.inc({ subject, outcome: 'error' });
          const h = natsHeaders();
          h.set(FAILURE_HEADER, 'internal');
          msg.respond(JSON.stringify({ error: { code: 'internal', message: 'Internal error' } }), { headers: h });
        }
      }).catch(() => {});
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
    },
  });
  return sub;
}

/**
 * Sends a JSON request and returns the JSON answer; no responder or a timeout is ServiceUnavailableError.
 * Requests made in one event-loop turn leave in one socket write (turn.ts).
 */
export async function requestJson<T>(nc: NatsConnection, subject: string, payload: unknown, timeoutMs = 5_000): Promise<T> {
  await endOfTurn();
  return requestJsonNow<T>(nc, subject, payload, timeoutMs);
}

/** requestJson for a caller already at the end of its turn (one that batches per turn itself). */
export async function requestJsonNow<T>(nc: NatsConnection, subject: string, payload: unknown, timeoutMs = 5_000): Promise<T> {
  try {
    const reply = await nc.request(subject, JSON.stringify(payload), { timeout: timeoutMs, headers: headersWithTrace() });
    if (reply.headers?.get(FAILURE_HEADER)) throw new RemoteFailureError(`${subject} failed on the responder`);
    return reply.json<T>();
  } catch (error) {
    if (error instanceof RemoteFailureError) throw error;
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
  nc: NatsConnection,
  namespace: string,
  method: M,
  req: RpcMethods[M]['req'],
  timeoutMs?: number,
): Promise<RpcMethods[M]['res']> {
  return endOfTurn().then(() => callRpcNow(nc, namespace, method, req, timeoutMs));
}

/** callRpc for a caller already at the end of its turn (one that batches per turn itself). */
export function callRpcNow<M extends RpcMethod>(
  nc: NatsConnection,
  namespace: string,
  method: M,
  req: RpcMethods[M]['req'],
  timeoutMs?: number,
): Promise<RpcMethods[M]['res']> {
  const [service, name] = method.split('.') as [ServiceName, string];
  return requestJsonNow<RpcMethods[M]['res']>(nc, subjects.rpc(namespace, service, name), req, timeoutMs);
}

/** Serves every handler of `handlers` as `<ns>.rpc.<service>.<name>` in the service's queue group. */
export function serveRpc(
  nc: NatsConnection,
  namespace: string,
  service: ServiceName,
  handlers: Record<string, (req: never) => Promise<unknown>>,
  log: Logger,
  metrics?: Metrics,
): Subscription[] {
  return Object.entries(handlers).map(([name, handler]) =>
    serveRequests(nc, subjects.rpc(namespace, service, name), service, (req) => handler(req as never), log, metrics),
  );
}
