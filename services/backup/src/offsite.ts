import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { archiveTime, CorruptArchiveError } from './archive.js';
import { POOL_DIR, poolPath, readPoolReferences } from './attachments.js';
import { sha256File } from './files.js';
import { ARCHIVE_SIDECARS, POOL_GRACE_MS, selectPerNamespace, type ArchiveEntry, type KeepPolicy, type KeepReason } from './rotate.js';

/** Where off-site copies go: `s3://bucket/prefix` plus, for MinIO and other S3-compatible stores, an endpoint. */
export interface OffsiteConfig {
  url: string;
  endpoint?: string | undefined;
  region: string;
}

/** The setting is not an `s3://bucket[/prefix]` address. */
export class OffsiteConfigError extends Error {
  override name = 'ConfigError';
}

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m?.[1]) throw new OffsiteConfigError(`BACKUP_S3_URL must look like s3://bucket/prefix, not ${JSON.stringify(url)}`);
  const prefix = (m[2] ?? '').replace(/\/+$/, '');
  return { bucket: m[1], prefix: prefix ? `${prefix}/` : '' };
}

/**
 * Off-site copies of the backup archives in S3-compatible storage (issue 20: nothing shipped a
 * backup off the machine). Each archive goes up with its `.sha256` and, once verified, a
 * `.verified` marker, under the same names as in the backup folder; rotation there uses the same
 * selection as the folder's (rotate.ts), so the newest verified archive is never deleted either.
 * Credentials come from the AWS SDK's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
 * a profile, or the pod's role); nothing secret is a Parley setting.
 */
export class OffsiteStore {
  private readonly s3: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(config: OffsiteConfig) {
    ({ bucket: this.bucket, prefix: this.prefix } = parseS3Url(config.url));
    this.s3 = new S3Client({
      region: config.region,
      ...(config.endpoint ? { endpoint: config.endpoint, forcePathStyle: true } : {}),
      // Checksums only where S3 requires them: the SDK's newer default (CRC32 trailers in
      // aws-chunked uploads) is not understood by every S3-compatible store; the archive's own
      // SHA-256 is checked on the way back instead (pull).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  close(): void {
    this.s3.destroy();
  }

  /**
   * Uploads the attachment files the archive needs that are not there yet (the pool, as beside the
   * local archives: an attachment goes up once, whatever the number of archives naming it), then
   * the archive (multipart for big files), its `.files` sidecar and its `.sha256`, then the
   * `.verified` marker if `verified`.
   */
  async push(archive: string, verified: boolean): Promise<{ bytes: number; poolFiles: number; poolBytes: number }> {
    const name = path.basename(archive);
    const { size } = await stat(archive);
    const references = await readPoolReferences(archive);
    const there = new Set((await this.keysUnder(`${POOL_DIR}/`)).map((k) => path.posix.basename(k.name)));
    let poolFiles = 0;
    let poolBytes = 0;
    const pool = path.join(path.dirname(archive), POOL_DIR);
    for (const sha of references) {
      if (there.has(sha)) continue;
      const file = poolPath(pool, sha);
      poolBytes += (await stat(file)).size;
      await this.upload(poolKey(sha), file);
      poolFiles += 1;
    }
    await this.upload(name, archive);
    if (references.length > 0) await this.put(`${name}.files`, await readFile(`${archive}.files`));
    // The checksum after the rest: a listing that shows the .sha256 shows a complete archive.
    await this.put(`${name}.sha256`, await readFile(`${archive}.sha256`));
    if (verified) await this.put(`${name}.verified`, Buffer.from(`verified ${new Date().toISOString()}\n`));
    return { bytes: size, poolFiles, poolBytes };
  }

  /** The archives there, complete ones only (with their `.sha256`), with whether each is verified. */
  async list(): Promise<ArchiveEntry[]> {
    const names = new Set<string>();
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }));
      for (const object of page.Contents ?? []) if (object.Key) names.add(object.Key.slice(this.prefix.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const archives: ArchiveEntry[] = [];
    for (const name of names) {
      const time = archiveTime(name);
      if (time && names.has(`${name}.sha256`)) archives.push({ name, time, verified: names.has(`${name}.verified`) });
    }
    return archives.sort((a, b) => b.time.getTime() - a.time.getTime());
  }

  /** Applies the folder's rotation to the archives there (per namespace), deleting with their sidecars. */
  async rotate(policy: KeepPolicy, poolGraceMs = POOL_GRACE_MS): Promise<{ kept: Map<string, KeepReason[]>; removed: string[]; poolRemoved: number }> {
    const { keep: kept, remove: removed } = selectPerNamespace(await this.list(), policy);
    // The .sha256 goes first with the archive: a half-finished delete leaves no "complete" entry.
    await this.remove(removed.flatMap((name) => [`${name}.sha256`, name, ...ARCHIVE_SIDECARS.filter((s) => s !== '.sha256').map((s) => `${name}${s}`)]));
    // Then the attachment files no kept archive names, once past the grace (a push beside this one
    // uploads its files before its sidecar).
    const referenced = new Set<string>();
    for (const name of kept.keys()) for (const sha of await this.references(name)) referenced.add(sha);
    const unused = (await this.keysUnder(`${POOL_DIR}/`)).filter((k) => !referenced.has(path.posix.basename(k.name)) && Date.now() - k.modified >= poolGraceMs);
    await this.remove(unused.map((k) => k.name));
    return { kept, removed, poolRemoved: unused.length };
  }

  /**
   * Downloads an archive (a name, or `latest` for the newest verified one) into `dir` with its
   * `.sha256`, and checks it: a download that does not match its checksum is removed and refused.
   */
  async pull(which: string, dir: string): Promise<string> {
    const archives = await this.list();
    const entry = which === 'latest' ? archives.find((a) => a.verified) : archives.find((a) => a.name === which);
    if (!entry) throw new CorruptArchiveError(which === 'latest' ? `no verified archive under ${this.where()}` : `${which} is not a complete archive under ${this.where()}`);
    await mkdir(dir, { recursive: true });
    const target = path.join(dir, entry.name);
    const partial = `${target}.partial`;
    try {
      await this.download(entry.name, partial);
      const sidecar = await this.text(`${entry.name}.sha256`);
      const expected = sidecar.trim().split(/\s+/)[0];
      const actual = await sha256File(partial);
      if (actual !== expected) throw new CorruptArchiveError(`${entry.name}: downloaded SHA-256 ${actual} does not match its .sha256 (${expected})`);
      // The attachment files it needs, into the pool beside it, each checked against its name.
      const references = await this.references(entry.name);
      for (const sha of references) {
        const file = poolPath(path.join(dir, POOL_DIR), sha);
        if ((await stat(file).catch(() => null)) && (await sha256File(file)) === sha) continue;
        await mkdir(path.dirname(file), { recursive: true });
        await this.download(poolKey(sha), `${file}.partial`);
        if ((await sha256File(`${file}.partial`)) !== sha) {
          await rm(`${file}.partial`, { force: true });
          throw new CorruptArchiveError(`attachment file ${sha}: the downloaded content does not match its SHA-256`);
        }
        await rename(`${file}.partial`, file);
      }
      if (references.length > 0) await writeFile(`${target}.files`, references.map((s) => `${s}\n`).join(''));
      await rename(partial, target);
      await writeFile(`${target}.sha256`, sidecar);
      return target;
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
  }

  /** `s3://bucket/prefix`, for messages. */
  where(): string {
    return `s3://${this.bucket}/${this.prefix}`;
  }

  private key(name: string): string {
    return `${this.prefix}${name}`;
  }

  /** The pool files an archive there names (its `.files` sidecar; none for an archive without one). */
  private async references(name: string): Promise<string[]> {
    const text = await this.text(`${name}.files`).catch((error: { name?: string }) => {
      if (error.name === 'NoSuchKey' || error.name === 'NotFound') return '';
      throw error;
    });
    return text.split('\n').filter((l) => /^[0-9a-f]{64}$/.test(l));
  }

  /** Keys under the prefix + `sub`, relative to the prefix, with their modification times. */
  private async keysUnder(sub: string): Promise<{ name: string; modified: number }[]> {
    const keys: { name: string; modified: number }[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.prefix}${sub}`, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) keys.push({ name: o.Key.slice(this.prefix.length), modified: o.LastModified?.getTime() ?? 0 });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  private async remove(names: string[]): Promise<void> {
    for (let i = 0; i < names.length; i += 900) {
      const objects = names.slice(i, i + 900).map((n) => ({ Key: this.key(n) }));
      await this.s3.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: objects, Quiet: true } }));
    }
  }

  private async upload(name: string, file: string): Promise<void> {
    await new Upload({ client: this.s3, params: { Bucket: this.bucket, Key: this.key(name), Body: createReadStream(file) }, queueSize: 2, partSize: 16 * 1024 * 1024 }).done();
  }

  private async put(name: string, body: Buffer): Promise<void> {
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(name), Body: body }));
  }

  private async download(name: string, file: string): Promise<void> {
    const answer = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
    await pipeline(answer.Body as Readable, createWriteStream(file));
  }

  private async text(name: string): Promise<string> {
    const answer = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
    return answer.Body!.transformToString();
  }
}

/** A pool file's name there, as beside the local archives. */
function poolKey(sha256: string): string {
  return `${POOL_DIR}/${sha256.slice(0, 2)}/${sha256}`;
}
