import type { Readable } from 'node:stream';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Metrics } from '@parley/telemetry';
import { ThumbnailCache, type ThumbnailOutcome } from '../thumbnails/cache.js';
import { renderThumbnail, THUMBNAIL_MIMES, UnprocessableImage } from '../thumbnails/render.js';
import { Slots, SlotsFull } from '../slots.js';
import { attachmentAccess, error, json, NO_SUCH_ATTACHMENT, type AnswerState, type AttachmentDeps } from './attachments.js';
import { endWith } from './end.js';

export interface ThumbnailDeps extends Pick<AttachmentDeps, 'authenticate' | 'bus' | 'namespace' | 'serviceTimeoutMs' | 'store' | 'log'> {
  metrics: Metrics;
  /** THUMBNAIL_MAX_PIXELS: larger images are refused from their header, never decoded. */
  maxPixels: number;
}

/** Thumbnails made at once per gateway, and requests that may wait for one (beyond: 503). */
const PARALLEL = 2;
const MAX_WAITING = 64;
/** Memory for finished thumbnails (about 1,000 of them at 10-20 KiB), and how long one is kept. */
const CACHE_BYTES = 16 * 1024 * 1024;
const CACHE_TTL_MS = 10 * 60 * 1000;

/**
 * GET /api/v1/attachments/:id/thumbnail: a WebP preview of an image attachment (render.ts), made
 * here in the gateway on demand. The access check is the download's own and runs first, every
 * time; only then is the in-memory cache consulted, so a cached thumbnail never outlives anyone's
 * right to the file. Misses are made at most PARALLEL at a time (Slots), and requests for the same
 * file while it is being made share the one result.
 */
export function thumbnailHandler(deps: ThumbnailDeps) {
  const cache = new ThumbnailCache(CACHE_BYTES, CACHE_TTL_MS);
  const slots = new Slots(PARALLEL, MAX_WAITING);
  const inFlight = new Map<string, Promise<ThumbnailOutcome | null>>();
  const count = (outcome: string) => deps.metrics.thumbnails.inc({ outcome });

  /** The thumbnail of a file the caller may see, or null when the store no longer has the file. */
  const make = (id: string): Promise<ThumbnailOutcome | null> => {
    const running = inFlight.get(id);
    if (running) return running;
    const job = slots
      .run(async () => {
        const file = await deps.store.read(id);
        if (!file) return null;
        const input = await readAll(file.stream);
        try {
          const outcome = { webp: await renderThumbnail(input, deps.maxPixels) };
          count('made');
          return outcome;
        } catch (err) {
          if (!(err instanceof UnprocessableImage)) throw err;
          deps.log.info({ attachmentId: id, reason: err.message }, 'no thumbnail for an image');
          count('refused');
          return { refused: err.message };
        }
      })
      .then((outcome) => {
        if (outcome) cache.set(id, outcome);
        return outcome;
      })
      .finally(() => inFlight.delete(id));
    inFlight.set(id, job);
    return job;
  };

  // One handler for GET and HEAD (app.ts), so both share the cache and the slots.
  return (res: HttpResponse, req: HttpRequest): void => {
    const state: AnswerState = { done: false, aborted: false, head: req.getMethod().toUpperCase() === 'HEAD' };
    res.onAborted(() => {
      state.aborted = true;
    });
    const id = req.getParameter(0) ?? '';
    const token = /^Bearer (.+)$/i.exec(req.getHeader('authorization'))?.[1];
    void (async () => {
      const access = await attachmentAccess(deps, token, id);
      if (!('meta' in access)) {
        // No access, or the file is gone (deleted, expired, erased): its thumbnail leaves memory now
        // rather than at the TTL. (A stranger's 404 may evict a member's entry: it costs one remake.)
        if (access.status === 404) cache.delete(id);
        return json(res, state, access.status, access.body);
      }
      // The client reads `mime` and asks only for images; anything else has no thumbnail.
      if (!THUMBNAIL_MIMES.has(access.meta.mime)) return json(res, state, 404, error('not_found', 'No thumbnail for this attachment: it is not a PNG, JPEG, GIF or WebP image'));
      let outcome = cache.get(id);
      if (outcome) count('cached');
      else {
        if (state.aborted) return;
        try {
          outcome = (await make(id)) ?? undefined;
        } catch (err) {
          if (err instanceof SlotsFull) {
            count('busy');
            return json(res, state, 503, error('unavailable', 'Too many thumbnails are being made; try again'));
          }
          deps.log.error({ err, attachmentId: id }, 'thumbnail failed');
          return json(res, state, 503, error('unavailable', 'Thumbnail not made; try again'));
        }
      }
      if (!outcome) return json(res, state, NO_SUCH_ATTACHMENT.status, NO_SUCH_ATTACHMENT.body);
      if ('refused' in outcome) return json(res, state, 422, error('unprocessable', outcome.refused));
      send(res, state, outcome.webp);
    })();
  };
}

/**
 * A thumbnail is a few KiB: one write, no backpressure handling needed. A HEAD gets its length,
 * which only making it can tell (it is then cached for the GET that follows).
 */
function send(res: HttpResponse, state: AnswerState, webp: Buffer): void {
  if (state.done || state.aborted) return;
  state.done = true;
  res.cork(() => {
    res.writeStatus('200 OK').writeHeader('content-type', 'image/webp').writeHeader('x-content-type-options', 'nosniff').writeHeader('cache-control', 'no-store');
    endWith(res, state.head === true, new Uint8Array(webp.buffer, webp.byteOffset, webp.byteLength));
  });
}

/**
 * The whole file in one buffer: libvips needs all of an image before it can decode it (a stream
 * into sharp is collected the same way). At most ATTACHMENT_MAX_BYTES, and at most PARALLEL files
 * at once.
 */
async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
