import sharp from 'sharp';

/** Longest side of a thumbnail: big enough for a chat bubble on a 2x screen, small to send. */
export const THUMBNAIL_SIZE = 320;

/**
 * The stored types a thumbnail is made for (`mime` is sniffed from the content at upload, so it
 * names the real format). Nothing else reaches libvips: not SVG (librsvg would parse untrusted XML),
 * not TIFF, HEIF or PDF, whose loaders are a larger attack surface than a chat needs.
 */
export const THUMBNAIL_MIMES: ReadonlySet<string> = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/** Seconds libvips may spend on one image before giving up (a pathological file, not a slow disk). */
const RENDER_TIMEOUT_SECONDS = 10;

// libvips' operation cache keeps recent decoded images (up to 50 MB by default): the byte-bounded
// cache of finished thumbnails is the only one wanted. One libvips thread per image: at most two
// images at once (see Slots) then use at most two of the libuv pool's four threads, leaving the rest
// for the file reads of downloads and uploads.
sharp.cache(false);
sharp.concurrency(1);

/** An image that is not turned into a thumbnail: too many pixels, or not decodable. */
export class UnprocessableImage extends Error {}

/**
 * A WebP thumbnail of `input` (PNG, JPEG, GIF or WebP), fitting inside THUMBNAIL_SIZE square, never
 * enlarged, turned by its EXIF orientation, with no metadata (sharp writes none unless asked: no
 * EXIF, so no camera GPS position goes out). Decoding happens on libuv's thread pool, so the event
 * loop only waits for the result. An image of more than `maxPixels` pixels is refused from its
 * header, before anything is decoded (a decompression bomb: a few bytes declaring 30000x30000).
 */
export async function renderThumbnail(input: Buffer, maxPixels: number): Promise<Buffer> {
  try {
    return await sharp(input, {
      limitInputPixels: maxPixels,
      // The first frame of an animated GIF or WebP.
      pages: 1,
      // Fail on real errors (a truncated file), not on the benign warnings many cameras' files raise.
      failOn: 'error',
    })
      .rotate()
      .resize(THUMBNAIL_SIZE, THUMBNAIL_SIZE, { fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 75 })
      .timeout({ seconds: RENDER_TIMEOUT_SECONDS })
      .toBuffer();
  } catch (err) {
    // Every failure here is the image's: sharp reports unreadable input, the pixel limit and the
    // timeout as errors of the same kind, and the message says which.
    const reason = String((err as Error).message ?? err);
    if (/pixel limit/i.test(reason)) throw new UnprocessableImage(`The image has more than ${maxPixels} pixels; no thumbnail is made for it`);
    if (/timeout/i.test(reason)) throw new UnprocessableImage('The image took too long to decode; no thumbnail is made for it');
    throw new UnprocessableImage('The image cannot be decoded; no thumbnail is made for it');
  }
}
