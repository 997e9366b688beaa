import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileTypeFromBuffer } from 'file-type';

/**
 * Where attachment bytes live. Names are always server-generated ids (never anything a client
 * sent), so no client string ever becomes a path. The local-disk driver suits one host or a shared
 * volume; an S3-compatible driver can implement the same interface.
 */
export interface AttachmentStore {
  /** Streams `source` into the store under `id`, refusing more than `maxBytes`. */
  write(id: string, source: Readable, maxBytes: number): Promise<{ size: number; sniffedMime: string | null }>;
  read(id: string): Promise<{ stream: Readable; size: number } | null>;
  delete(id: string): Promise<void>;
  /** Every stored id with its last-modified time (complete files only), for orphan sweeps. */
  list(): AsyncIterable<{ id: string; modifiedAt: Date }>;
}

export class TooLargeError extends Error {
  override name = 'TooLargeError';
}

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Bytes kept from the start of a file for content sniffing (file-type needs at most ~4 KiB). */
const SNIFF_BYTES = 4100;

export class LocalDiskStore implements AttachmentStore {
  constructor(private readonly directory: string) {}

  private pathOf(id: string): string {
    if (!ID.test(id)) throw new Error('invalid attachment id');
    // Two-level fan-out keeps directories small.
    return path.join(this.directory, id.slice(-2), id);
  }

  async write(id: string, source: Readable, maxBytes: number): Promise<{ size: number; sniffedMime: string | null }> {
    const final = this.pathOf(id);
    await mkdir(path.dirname(final), { recursive: true });
    const partial = `${final}.partial`;
    let size = 0;
    const head: Buffer[] = [];
    let headBytes = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > maxBytes) return done(new TooLargeError(`larger than ${maxBytes} bytes`));
        if (headBytes < SNIFF_BYTES) {
          head.push(chunk);
          headBytes += chunk.length;
        }
        done(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream(partial, { flags: 'wx' }));
      // Only complete files get their final name: a reader never sees half an upload.
      await rename(partial, final);
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
    const sniffed = await fileTypeFromBuffer(Buffer.concat(head).subarray(0, SNIFF_BYTES));
    return { size, sniffedMime: sniffed?.mime ?? null };
  }

  async read(id: string): Promise<{ stream: Readable; size: number } | null> {
    const file = this.pathOf(id);
    try {
      const { size } = await stat(file);
      return { stream: createReadStream(file), size };
    } catch {
      return null;
    }
  }

  async delete(id: string): Promise<void> {
    await rm(this.pathOf(id), { force: true });
  }

  async *list(): AsyncIterable<{ id: string; modifiedAt: Date }> {
    let buckets: string[];
    try {
      buckets = await readdir(this.directory);
    } catch {
      return; // nothing stored yet
    }
    for (const bucket of buckets) {
      let names: string[];
      try {
        names = await readdir(path.join(this.directory, bucket));
      } catch {
        continue; // not a directory
      }
      for (const name of names) {
        if (!ID.test(name)) continue; // .partial uploads in progress
        try {
          const { mtime } = await stat(path.join(this.directory, bucket, name));
          yield { id: name, modifiedAt: mtime };
        } catch {
          // deleted meanwhile
        }
      }
    }
  }
}
