import { context, propagation, trace, SpanKind, SpanStatusCode, type Context, type Span } from '@opentelemetry/api';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';

/**
 * W3C trace context in NATS message headers, so one trace follows a message from the WebSocket
 * frame through JetStream to the Postgres write (docs/architecture.md#promises). No-ops when tracing is off.
 */
const setter = { set: (carrier: MsgHdrs, key: string, value: string) => carrier.set(key, value) };
const getter = {
  get: (carrier: MsgHdrs | undefined, key: string) => carrier?.get(key) || undefined,
  keys: (carrier: MsgHdrs | undefined) => (carrier ? carrier.keys() : []),
};

export const tracer = trace.getTracer('parley');

export function headersWithTrace(extra?: Record<string, string>): MsgHdrs {
  const h = natsHeaders();
  propagation.inject(context.active(), h, setter);
  for (const [k, v] of Object.entries(extra ?? {})) h.set(k, v);
  return h;
}

export function contextFrom(h: MsgHdrs | undefined): Context {
  return propagation.extract(context.active(), h, getter);
}

/** Runs `fn` in a span that is a child of the trace carried by `h` (if any). */
export async function inSpan<T>(name: string, h: MsgHdrs | undefined, kind: SpanKind, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { kind }, contextFrom(h), async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

export { SpanKind };
