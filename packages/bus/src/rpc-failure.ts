import { Empty, headers as natsHeaders, type Msg } from '@nats-io/transport-node';

/**
 * How a responder says a request failed, in the NATS services protocol's convention (ADR-32, as
 * `@nats-io/services` writes it): a reply whose `Nats-Service-Error-Code` header holds a number and
 * whose `Nats-Service-Error` header describes the failure. The body is empty, so a caller that
 * overlooked the headers still could not read a failure as a result. docs/decisions.md says why
 * Parley takes the headers but not the framework.
 */
export const SERVICE_ERROR_HEADER = 'Nats-Service-Error';
export const SERVICE_ERROR_CODE_HEADER = 'Nats-Service-Error-Code';

/** Parley's codes, borrowed from HTTP as the services framework's own 500 is. */
const CODES = { invalid: 400, refused: 403, internal: 500 } as const;
export type FailureKind = keyof typeof CODES;

/** A request found nobody to answer it, or nobody answered in time: the caller answers 503. */
export class ServiceUnavailableError extends Error {
  override name = 'ServiceUnavailableError';
}

/** The responder failed while handling the request, or answered outside the method's reply schema. */
export class RemoteFailureError extends ServiceUnavailableError {
  override name = 'RemoteFailureError';
}

/**
 * The request itself is larger than one NATS message (the server's max_payload): nothing was sent.
 * A client's JSON can grow when encoded again (`1e20` becomes 21 digits), past a body limit that
 * was checked on the bytes received; the caller answers 413, not 503.
 */
export class RequestTooLargeError extends Error {
  override name = 'RequestTooLargeError';
}

/**
 * NATS's "no responders" anywhere in the causes: nobody is subscribed to the subject (nats.js wraps
 * it, in a RequestError for a request, so only the text tells it through every layer).
 */
export function isNoResponders(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) if (/no responders/i.test(e.message)) return true;
  return false;
}

/** The responder refused the request: it was not signed, or not for this subject (never retried). */
export class RequestRefusedError extends Error {
  override name = 'RequestRefusedError';
}

/**
 * The request does not match its method's schema, or is not JSON. Neither a RequestRefusedError
 * (that one means the signature or proof failed, which an operator reads as a key problem) nor a
 * ServiceUnavailableError: sent again it is refused again, so nobody retries it or answers 503 for
 * it; it is a bug of the caller, and surfaces as one (500 at the HTTP edge, logged).
 */
export class InvalidRequestError extends Error {
  override name = 'InvalidRequestError';

  /** `path`: where the request went wrong (a JSON pointer), the only part of it that is logged. */
  constructor(
    message: string,
    readonly path = '/',
  ) {
    super(message);
  }
}

/** Answers `msg` with a failure of `kind`; `description` goes to the caller only (never a payload or a stack). */
export function respondFailure(msg: Msg, kind: FailureKind, description: string): void {
  const h = natsHeaders();
  h.set(SERVICE_ERROR_CODE_HEADER, String(CODES[kind]));
  h.set(SERVICE_ERROR_HEADER, headerText(description));
  msg.respond(Empty, { headers: h });
}

/** The error a failure reply stands for, or null when `reply` is a result. */
export function failureOf(reply: Msg, subject: string): Error | null {
  const code = reply.headers?.get(SERVICE_ERROR_CODE_HEADER) ?? '';
  const description = reply.headers?.get(SERVICE_ERROR_HEADER) ?? '';
  if (!code && !description) return null;
  switch (Number(code)) {
    case CODES.invalid:
      return new InvalidRequestError(`${subject} refused the request as invalid: ${description}`);
    case CODES.refused:
      return new RequestRefusedError(`${subject} refused the request (signature or proof)`);
    default:
      return new RemoteFailureError(`${subject} failed on the responder (${code || 'no code'}: ${description})`);
  }
}

/** Header values may not hold CR or LF; a schema path can hold anything a caller named a field. */
function headerText(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}
