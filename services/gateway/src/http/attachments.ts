import { PassThrough, pipeline, type Readable } from 'node:stream';
import busboy from 'busboy';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { callRpc, ServiceUnavailableError, type Bus } from '@parley/bus';
import { isId, newId, type RpcMethods } from '@parley/contracts';
import type { Logger } from '@parley/log';
import { TooLargeError, type AttachmentStore } from '@parley/storage';
import type { Authenticate } from '../auth/authenticator.js';
import { endHead, endWith } from './end.js';

export interface AttachmentDeps {
  bus: Bus;
  namespace: string;
  store: AttachmentStore;
  authenticate: Authenticate;
  log: Logger;
  maxBytes: number;
  serviceTimeoutMs: number;
  /** Uploads per user per minute on this gateway, and the unsent bytes a user may hold. */
  uploadsPerMinute: number;
  pendingBytes: number;
}

const STATUS: Record<number, string> = {
  200: '200 OK',
  201: '201 Created',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  404: '404 Not Found',
  413: '413 Payload Too Large',
  422: '422 Unprocessable Content',
  429: '429 Too Many Requests',
  503: '503 Service Unavailable',
};

/** Upload times per user in the last minute (one gateway's view; a user's uploads rarely spread). */
class UploadRate {
  private readonly recent = new Map<string, number[]>();
  constructor(private readonly perMinute: number) {}
  /** Counts an upload, or answers the seconds to wait. */
  take(userId: string, now = Date.now()): number | null {
    const times = (this.recent.get(userId) ?? []).filter((t) => t > now - 60_000);
    if (times.length >= this.perMinute) {
      this.recent.set(userId, times);
      return Math.max(1, Math.ceil((times[0]! + 60_000 - now) / 1000));
    }
    times.push(now);
    this.recent.set(userId, times);
    if (this.recent.size > 100_000) for (const [k, v] of this.recent) if (v.every((t) => t <= now - 60_000)) this.recent.delete(k);
    return null;
  }
}

/** What a handler knows of its answer; `head`: the request is a HEAD (headers only, see end.ts). */
export interface AnswerState {
  done: boolean;
  aborted: boolean;
  head?: boolean;
  release?: (() => void) | undefined;
}

export function json(res: HttpResponse, state: AnswerState, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (state.done || state.aborted) return;
  state.done = true;
  state.release?.();
  const payload = JSON.stringify(body);
  res.cork(() => {
    res.writeStatus(STATUS[status] ?? String(status)).writeHeader('content-type', 'application/json; charset=utf-8').writeHeader('cache-control', 'no-store');
    for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
    endWith(res, state.head === true, payload);
  });
}

export const error = (code: string, message: string) => ({ error: { code, message } });

/** Everyone without access, a deleted file, and an id that never existed get this same answer. */
export const NO_SUCH_ATTACHMENT = { status: 404, body: error('not_found', 'No such attachment') };

export type AttachmentMeta = NonNullable<RpcMethods['messages.attachmentAccess']['res']>;

/**
 * The access rule of both GET routes, the file and its thumbnail: a valid token (401), a
 * well-formed id (400), and messages.attachmentAccess saying yes: the uploader, or a member of a
 * chat the file was sent to. Before saying no, that RPC waits for the chats projection to catch up
 * (read-your-writes), so a member who just got the message live is not refused. Anyone else, and a
 * deleted file, gets 404 `not_found`, the same answer as an id that never existed.
 */
export async function attachmentAccess(
  deps: Pick<AttachmentDeps, 'authenticate' | 'bus' | 'namespace' | 'serviceTimeoutMs'>,
  token: string | undefined,
  id: string,
): Promise<{ meta: AttachmentMeta } | { status: number; body: unknown }> {
  const claims = token ? await deps.authenticate(token) : null;
  if (!claims) return { status: 401, body: error('unauthorized', 'Missing or invalid access token') };
  if (!isId(id)) return { status: 400, body: error('invalid_request', 'Invalid attachment id') };
  let meta: RpcMethods['messages.attachmentAccess']['res'];
  try {
    meta = await callRpc(deps.bus, deps.namespace, 'messages.attachmentAccess', { attachmentId: id, userId: claims.userId }, deps.serviceTimeoutMs);
  } catch {
    return { status: 503, body: error('unavailable', 'Try again') };
  }
  return meta ? { meta } : NO_SUCH_ATTACHMENT;
}

/**
 * A client file name made harmless: no path, no control characters, no format characters (bidi
 * overrides and isolates, zero-width characters: `invoice-\u202Efdp.exe` would show as
 * "invoice-exe.pdf", issue 23 finding 7), composed (NFC), bounded length.
 */
export function cleanFileName(name: string | undefined): string {
  const base = (name ?? '').split(/[\\/]/).pop() ?? '';
  // At most 255 UTF-16 units (the bound the services check), never half a character: an emoji
  // across the edge kept its first half, and the name acknowledged was not the name stored
  // (Postgres took the half for U+FFFD).
  // eslint-disable-next-line no-control-regex
  const cut = base.normalize('NFC').replace(/[\u0000-\u001f\u007f-\u009f]|\p{Cf}/gu, '').trim().slice(0, 255);
  const clean = /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut;
  return clean || 'file';
}

/**
 * POST /api/v1/attachments: a multipart upload streamed from the socket through busboy into the
 * attachment store, never whole in memory (uWS pauses the socket while the disk catches up). Only
 * the metadata goes to the messages service over NATS; 25 MiB would not fit a NATS message.
 * The type is sniffed from the content; what the client declared is not trusted.
 */
export function uploadHandler(deps: AttachmentDeps) {
  const rate = new UploadRate(deps.uploadsPerMinute);
  /**
   * Bytes of each user's uploads still streaming here, counted against the unsent-uploads quota
   * beside the stored ones: those are registered only once their body is in, so uploads started
   * together all saw the same room (found in review: thirty 25 MiB uploads passed a 200 MiB quota).
   * Per gateway: with G gateways a user who spreads uploads over all of them gets G times the room
   * for what is in flight at once.
   */
  const streaming = new Map<string, number>();
  return (res: HttpResponse, req: HttpRequest): void => {
    const state: AnswerState = { done: false, aborted: false };
    const body = new PassThrough({ highWaterMark: 256 * 1024 });
    res.onAborted(() => {
      state.aborted = true;
      state.release?.();
      // The client went away (or uWS timed out a trickled body) mid-upload. Without this the
      // stream never ends: busboy and the store wait for it forever, each holding an open
      // .partial file (a descriptor leaked per aborted upload, found by issue 10's upload abuse
      // test). Destroying it fails the store's pipeline, which removes the partial file.
      body.destroy(new Error('upload aborted by the client'));
    });
    const contentType = req.getHeader('content-type');
    const token = /^Bearer (.+)$/i.exec(req.getHeader('authorization'))?.[1];
    const declaredLength = Number.parseInt(req.getHeader('content-length') || '0', 10) || 0;
    const declared = req.getHeader('content-length') !== '';
    // Multipart framing adds a little; anything far over the limit is refused before reading.
    if (declaredLength > deps.maxBytes + 64 * 1024) {
      json(res, state, 413, error('payload_too_large', `Attachments are limited to ${deps.maxBytes} bytes`));
      return;
    }
    res.onData((chunk, isLast) => {
      if (state.done) return;
      const roomLeft = body.write(Buffer.from(chunk.slice(0)));
      // Never pause on the last chunk: nothing more will come, and Node emits no 'drain' after
      // end(), so a pause here was never undone and the keep-alive connection stayed paused until
      // the idle timeout reset it (issue 23, finding 7: every third 600 KiB upload stalled 10 s).
      if (isLast) {
        body.end();
        return;
      }
      if (!roomLeft) {
        res.pause();
        body.once('drain', () => !state.aborted && !state.done && res.resume());
      }
    });
    void (async () => {
      const claims = token ? await deps.authenticate(token) : null;
      if (!claims) return json(res, state, 401, error('unauthorized', 'Missing or invalid access token'));
      if (state.aborted) return;
      // Per user: a rate, and a quota on what no message carries yet (issue 23, finding 7).
      const wait = rate.take(claims.userId);
      if (wait !== null) return json(res, state, 429, error('rate_limited', `Too many uploads; try again in ${wait} s`), { 'retry-after': String(wait) });
      const pending = await callRpc(deps.bus, deps.namespace, 'messages.pendingUploads', { userId: claims.userId }, deps.serviceTimeoutMs).catch(() => null);
      if (!pending) return json(res, state, 503, error('unavailable', 'The messages service is not answering; try again'));
      if (state.aborted) return;
      // The multipart framing around the file is a few hundred bytes: the declared length, less 2 KiB.
      // A chunked body declares none: it reserves the most a file may be (before, it reserved
      // nothing, and any number of parallel chunked uploads passed the quota together).
      const size = declared ? Math.max(0, declaredLength - 2048) : deps.maxBytes;
      const inFlight = streaming.get(claims.userId) ?? 0;
      if (pending.bytes + inFlight + size > deps.pendingBytes) {
        // No Retry-After: waiting frees no room before the unsent uploads expire (a day); sending or deleting them does.
        return json(res, state, 429, error('rate_limited', `Unsent uploads are limited to ${deps.pendingBytes} bytes: send or delete some first`));
      }
      // Held from this check until the answer (then the upload is stored and counted, or gone).
      streaming.set(claims.userId, inFlight + size);
      state.release = () => {
        state.release = undefined;
        const left = (streaming.get(claims.userId) ?? 0) - size;
        if (left > 0) streaming.set(claims.userId, left);
        else streaming.delete(claims.userId);
      };
      let parser: busboy.Busboy;
      try {
        // defParamCharset: browsers and fetch send the file name as raw UTF-8; busboy's default
        // (latin1) turned "отчёт.pdf" into mojibake.
        parser = busboy({ headers: { 'content-type': contentType }, defParamCharset: 'utf8', limits: { files: 1, fileSize: deps.maxBytes, fields: 10, fieldSize: 1024 } });
      } catch {
        return json(res, state, 400, error('invalid_request', 'Send the file as multipart/form-data'));
      }
      let sawFile = false;
      parser.on('file', (_field, file: Readable & { truncated?: boolean }, info) => {
        sawFile = true;
        const id = newId();
        let tooLarge = false;
        file.on('limit', () => {
          tooLarge = true;
          file.destroy(new TooLargeError('too large'));
        });
        void (async () => {
          try {
            const stored = await deps.store.write(id, file, deps.maxBytes);
            const mime = stored.sniffedMime ?? (info.mimeType === 'text/plain' ? 'text/plain' : 'application/octet-stream');
            const meta = await callRpc(
              deps.bus,
              deps.namespace,
              'messages.registerAttachment',
              { attachmentId: id, uploaderId: claims.userId, name: cleanFileName(info.filename), size: stored.size, mime },
              deps.serviceTimeoutMs,
            );
            json(res, state, 201, meta);
          } catch (err) {
            await deps.store.delete(id).catch(() => {});
            if (state.aborted) deps.log.debug({ attachmentId: id }, 'upload aborted by the client; partial file removed');
            else if (tooLarge || err instanceof TooLargeError) json(res, state, 413, error('payload_too_large', `Attachments are limited to ${deps.maxBytes} bytes`));
            else if (err instanceof ServiceUnavailableError) json(res, state, 503, error('unavailable', 'Upload not stored; try again'));
            else {
              deps.log.error({ err }, 'upload failed');
              json(res, state, 503, error('unavailable', 'Upload not stored; try again'));
            }
          }
        })();
      });
      parser.on('error', () => json(res, state, 400, error('invalid_request', 'Malformed multipart body')));
      parser.on('close', () => {
        if (!sawFile) json(res, state, 400, error('invalid_request', 'No file in the upload'));
      });
      // pipeline, not pipe: it carries the abort's destroy on to busboy, which destroys the file
      // stream the store is reading, so its pipeline fails and the partial file is removed.
      pipeline(body, parser, () => {});
    })();
  };
}

/**
 * GET /api/v1/attachments/:id: streams the bytes to the uploader and to members of chats the file
 * was sent to (404 to anyone else), with uWS backpressure (tryEnd / onWritable). HEAD, registered
 * with the same handler: the same checks and headers, the file's length, no bytes.
 */
export function downloadHandler(deps: AttachmentDeps) {
  return (res: HttpResponse, req: HttpRequest): void => {
    const state: AnswerState = { done: false, aborted: false, head: req.getMethod().toUpperCase() === 'HEAD' };
    let source: Readable | undefined;
    res.onAborted(() => {
      state.aborted = true;
      source?.destroy();
    });
    const id = req.getParameter(0) ?? '';
    const token = /^Bearer (.+)$/i.exec(req.getHeader('authorization'))?.[1];
    void (async () => {
      const access = await attachmentAccess(deps, token, id);
      if (!('meta' in access)) return json(res, state, access.status, access.body);
      const { meta } = access;
      const file = await deps.store.read(id);
      if (!file) return json(res, state, NO_SUCH_ATTACHMENT.status, NO_SUCH_ATTACHMENT.body);
      if (state.aborted) return file.stream.destroy();
      source = file.stream;
      const total = file.size;
      res.cork(() => {
        res
          .writeStatus('200 OK')
          .writeHeader('content-type', meta.mime)
          .writeHeader('x-content-type-options', 'nosniff')
          .writeHeader('cache-control', 'no-store')
          .writeHeader('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(meta.name)}`);
        if (state.head) endHead(res, total);
        // An empty file has no 'data' to end the answer with: it hung until the client gave up.
        else if (total === 0) res.end();
        state.done = state.head === true || total === 0;
      });
      if (state.done) {
        file.stream.destroy();
        return;
      }
      file.stream.on('data', (chunk: Buffer) => {
        if (state.aborted) return;
        const ab = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        const start = res.getWriteOffset();
        let ok = false;
        let finished = false;
        res.cork(() => {
          [ok, finished] = res.tryEnd(ab, total);
        });
        if (finished) {
          state.done = true;
          return;
        }
        if (!ok) {
          file.stream.pause();
          res.onWritable((offset) => {
            let retryOk = false;
            res.cork(() => {
              [retryOk, finished] = res.tryEnd(ab.subarray(offset - start), total);
            });
            if (finished) state.done = true;
            else if (retryOk) file.stream.resume();
            return retryOk;
          });
        }
      });
      file.stream.on('error', () => {
        if (!state.aborted && !state.done) res.close();
      });
    })();
  };
}
