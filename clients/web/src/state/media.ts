import { ApiError, type Attachment } from '../api/index.js';
import { api } from './session.js';

/** The image types the server makes previews of (api.md, GET /attachments/:id/thumbnail). */
const PREVIEWED = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
export const isImage = (a: Pick<Attachment, 'mime'>): boolean => PREVIEWED.has(a.mime);

/**
 * Object URLs of fetched previews and images, one request per attachment and page load. The bytes
 * need the bearer token, so an <img src> cannot point at the API; a blob: URL can (the page's CSP
 * allows blob: images). A refusal (no preview for this file) is kept; a failure that may pass (the
 * network, a 5xx) is forgotten, so a later render asks again.
 */
const thumbnails = new Map<string, Promise<string | null>>();
const originals = new Map<string, Promise<string>>();

export function thumbnailUrl(id: string): Promise<string | null> {
  let url = thumbnails.get(id);
  if (!url) {
    // null: no preview (not decodable, too large): the attachment shows as a file instead.
    url = api.thumbnail(id).then(
      (blob) => URL.createObjectURL(blob),
      (error) => {
        if (!(error instanceof ApiError) || error.status >= 500) thumbnails.delete(id);
        return null;
      },
    );
    thumbnails.set(id, url);
  }
  return url;
}

export function originalUrl(id: string): Promise<string> {
  let url = originals.get(id);
  if (!url) {
    url = api.attachment(id).then((blob) => URL.createObjectURL(blob));
    url.catch(() => originals.delete(id));
    originals.set(id, url);
  }
  return url;
}

/** Forgets every fetched image (sign-out: nothing of the account stays in the page's memory). */
export function forgetMedia(): void {
  for (const cache of [thumbnails, originals]) {
    for (const url of cache.values()) void url.then((u) => u && URL.revokeObjectURL(u), () => undefined);
    cache.clear();
  }
}
