import { randomUUID } from 'node:crypto';
import { headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { failureOf, isNoResponders, respondFailure, ServiceUnavailableError } from './rpc-failure.js';

/**
 * Answers too large for one NATS message, sent in parts.
 *
 * NATS refuses a message over the server's `max_payload` (1 MiB by default, and an operator's
 * server may keep that default), and every HTTP answer and internal answer is one NATS reply. Most
 * stay far below it (pages are cut to 512 KiB, pagination.ts), but one cannot be cut by the client:
 * a data export (api.md, GET /users/me/export), which for a long-time user is many megabytes. It
 * was answered 503.
 *
 * So an answer over PART_BYTES goes like this: the reply carries its first part, the number of
 * parts and a subject, `<ns>.parts.<service>.<random id>`, on which the responding process serves
 * the other parts, one request each ("1", "2", ...), for PARTS_KEPT_MS. The caller asks for them
 * in order and joins them. Small answers, nearly all of them, are one reply as before: nothing
 * changes on the hot path. A pull, not a burst of replies, so that a caller never receives more
 * than it asked for (a core-NATS subscriber that falls behind loses messages) and the responder's
 * permission stays one response per request (`allow_responses`). The random id is the capability:
 * only the caller that got the first part learns it.
 */

/** The largest answer sent as one reply, and the size of each part: half of NATS's default max_payload. */
export const PART_BYTES = 512 * 1024;
/** How long a responder keeps an answer's parts for its caller to fetch. */
const PARTS_KEPT_MS = 60_000;
/** At most this many parts (PART_BYTES each, so 1 GiB): a reply claiming more is not followed. */
const MAX_PARTS = 2048;
const PARTS_HEADER = 'Parley-Parts';
const PARTS_SUBJECT_HEADER = 'Parley-Parts-Subject';

/**
 * Answers `msg` with `json`: in one reply, or, when it is larger than PART_BYTES and the responder
 * has a parts prefix, in parts served under `partsPrefix`.
 */
export function respondJson(nc: NatsConnection, msg: Msg, json: string, partsPrefix: string | undefined): void {
  // A UTF-16 unit is at most 3 bytes in UTF-8: most answers are known to fit without encoding twice.
  if (json.length * 3 <= PART_BYTES || !partsPrefix) {
    msg.respond(json);
    return;
  }
  const body = Buffer.from(json);
  if (body.length <= PART_BYTES) {
    msg.respond(body);
    return;
  }
  const count = Math.ceil(body.length / PART_BYTES);
  const part = (i: number) => body.subarray(i * PART_BYTES, (i + 1) * PART_BYTES);
  const subject = `${partsPrefix}.${randomUUID()}`;
  const sub = nc.subscribe(subject, {
    callback: (err, request) => {
      if (err) return;
      const i = Number(request.string());
      if (!Number.isInteger(i) || i < 1 || i >= count) {
        respondFailure(request, 'invalid', 'No such part');
        return;
      }
      request.respond(part(i));
      // Asked for in order: the last one read frees the answer.
      if (i === count - 1) {
        clearTimeout(expiry);
        sub.unsubscribe();
      }
    },
  });
  const expiry = setTimeout(() => sub.unsubscribe(), PARTS_KEPT_MS);
  expiry.unref();
  const h = natsHeaders();
  h.set(PARTS_HEADER, String(count));
  h.set(PARTS_SUBJECT_HEADER, subject);
  msg.respond(part(0), { headers: h });
}

/**
 * The whole answer of a reply: its data, or, for an answer sent in parts, every part fetched in
 * order and joined. Throws ServiceUnavailableError when a part cannot be had.
 */
export async function wholeAnswer(nc: NatsConnection, reply: Msg, timeoutMs: number): Promise<Uint8Array> {
  const announced = reply.headers?.get(PARTS_HEADER);
  if (!announced) return reply.data;
  const count = Number(announced);
  const subject = reply.headers?.get(PARTS_SUBJECT_HEADER) ?? '';
  if (!Number.isInteger(count) || count < 1 || count > MAX_PARTS || !subject) throw new ServiceUnavailableError('an answer in parts with a malformed announcement');
  const parts: Uint8Array[] = [reply.data];
  for (let i = 1; i < count; i++) parts.push(await fetchPart(nc, subject, i, timeoutMs));
  return Buffer.concat(parts);
}

async function fetchPart(nc: NatsConnection, subject: string, i: number, timeoutMs: number): Promise<Uint8Array> {
  for (let attempt = 0; ; attempt++) {
    try {
      const part = await nc.request(subject, String(i), { timeout: timeoutMs });
      const failure = failureOf(part, subject);
      if (failure || part.data.length === 0) throw new ServiceUnavailableError(`part ${i} of an answer was refused`, { cause: failure });
      return part.data;
    } catch (error) {
      // In a cluster, the responder's interest in the parts subject reaches the caller's server a
      // moment after the first part did: no responders then is worth a few short retries.
      if (isNoResponders(error) && attempt < 5) {
        await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** attempt));
        continue;
      }
      if (error instanceof ServiceUnavailableError) throw error;
      throw new ServiceUnavailableError(`part ${i} of an answer did not come`, { cause: error });
    }
  }
}
