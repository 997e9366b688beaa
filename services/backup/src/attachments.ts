import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CorruptArchiveError } from './archive.js';
import { listFiles, sha256File } from './files.js';
import type { Manifest, PartInfo } from './manifest.js';

export const ATTACHMENTS_PART = 'attachments';
/** The folder beside the archives holding the attachment files by content (format 2 archives). */
export const POOL_DIR = 'files';
const INDEX = 'index.json';

/** A file's place in the pool: `files/ab/abcdef…` (a fan-out level keeps folders small). */
export function poolPath(pool: string, sha256: string): string {
  return path.join(pool, sha256.slice(0, 2), sha256);
}

/** What the pool knew of each store file at the last backup: unchanged size and time means the same content. */
type PoolIndex = Record<string, { bytes: number; mtimeMs: number; sha256: string }>;

/**
 * Puts the attachment store's files into the pool beside the archives (issue 20: every archive
 * copied every attachment whole, every night). Attachment files are written once under a fresh id
 * and never changed, so a file already in the pool (by SHA-256) is not copied again, and one whose
 * size and modification time the index remembers is not even read. Runs after the stream export,
 * so every file an exported event refers to is already there (the gateway writes the file before
 * the metadata event). Uploads still being written (`.partial`) are skipped; a file deleted while
 * this runs is skipped too (its deletion event is in the streams or comes later). Pool files this
 * backup uses are touched, so a rotation running beside it never takes them as unused.
 */
export async function poolAttachments(source: string, pool: string): Promise<{ files: PartInfo[]; bytes: number; added: number; addedBytes: number }> {
  await mkdir(pool, { recursive: true });
  const index: PoolIndex = JSON.parse(await readFile(path.join(pool, INDEX), 'utf8').catch(() => '{}')) as PoolIndex;
  const nextIndex: PoolIndex = {};
  const files: PartInfo[] = [];
  let bytes = 0;
  let added = 0;
  let addedBytes = 0;
  const now = new Date();
  for (const rel of await listFiles(source)) {
    if (rel.endsWith('.partial')) continue;
    const file = path.join(source, rel);
    try {
      const { size, mtimeMs } = await stat(file);
      const known = index[rel];
      const sha256 = known && known.bytes === size && known.mtimeMs === mtimeMs ? known.sha256 : await sha256File(file);
      const target = poolPath(pool, sha256);
      const present = await stat(target).then((s) => s.size === size, () => false);
      if (present) {
        await utimes(target, now, now);
      } else {
        await mkdir(path.dirname(target), { recursive: true });
        await copyFile(file, `${target}.partial`);
        // Hashed again as copied: a file that changed under us must not enter the pool under a wrong name.
        if ((await sha256File(`${target}.partial`)) !== sha256) throw new Error(`${rel} changed while it was backed up`);
        // The users' files: for the job's user only, like the archives.
        await chmod(`${target}.partial`, 0o600);
        await rename(`${target}.partial`, target);
        added += 1;
        addedBytes += size;
      }
      nextIndex[rel] = { bytes: size, mtimeMs, sha256 };
      files.push({ path: `${ATTACHMENTS_PART}/${rel}`, bytes: size, sha256 });
      bytes += size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
  }
  await writeFile(path.join(pool, `${INDEX}.partial`), JSON.stringify(nextIndex));
  await rename(path.join(pool, `${INDEX}.partial`), path.join(pool, INDEX));
  return { files, bytes, added, addedBytes };
}

/** The pool objects an archive's attachments need, one SHA-256 a line: the `<archive>.files` sidecar. */
export function poolReferences(files: PartInfo[]): string {
  return [...new Set(files.map((f) => f.sha256))].sort().map((s) => `${s}\n`).join('');
}

/** Reads an `<archive>.files` sidecar (none: a format 1 archive, which needs no pool). */
export async function readPoolReferences(archive: string): Promise<string[]> {
  const text = await readFile(`${archive}.files`, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => /^[0-9a-f]{64}$/.test(l));
}

/**
 * Deletes pool files no remaining archive's sidecar names, once they are older than `graceMs` (a
 * backup running beside this one touches the files it uses, and writes its sidecar at its end).
 */
export async function collectPool(dir: string, keptArchives: string[], graceMs: number, now = Date.now()): Promise<{ removed: number; bytes: number }> {
  const pool = path.join(dir, POOL_DIR);
  const referenced = new Set<string>();
  for (const name of keptArchives) for (const sha of await readPoolReferences(path.join(dir, name))) referenced.add(sha);
  let removed = 0;
  let bytes = 0;
  for (const fan of await readdir(pool).catch(() => [] as string[])) {
    if (fan === INDEX || fan.endsWith('.partial')) continue;
    for (const name of await readdir(path.join(pool, fan)).catch(() => [] as string[])) {
      // A .partial is a copy a killed run never finished: never referenced, gone after the grace.
      if (!name.endsWith('.partial') && referenced.has(name)) continue;
      const file = path.join(pool, fan, name);
      const info = await stat(file).catch(() => null);
      if (!info || now - info.mtimeMs < graceMs) continue;
      await rm(file, { force: true });
      removed += 1;
      bytes += info.size;
    }
  }
  return { removed, bytes };
}

/**
 * Where an archive's attachment files are: inside it (format 1, unpacked into `extracted`) or in
 * the pool beside it (format 2).
 */
export function attachmentSource(archive: string, manifest: Manifest, extracted: string): (file: PartInfo) => string {
  const pool = manifest.attachments.pool;
  if (!pool) return (file) => path.join(extracted, file.path);
  return (file) => poolPath(path.join(path.dirname(archive), pool), file.sha256);
}

/**
 * Fails (CorruptArchiveError) unless every attachment file is where the archive says, at its size
 * and with its SHA-256. Run before the target is touched: the pool is outside the archive's
 * checksums, and a pool file damaged at the same size was found only while copying, after
 * restore --force had already emptied the target. `pooled`: the files lie in the pool; files
 * inside the archive were checked with its other parts when it was unpacked, and are not read again.
 */
export async function requireAttachments(source: (file: PartInfo) => string, files: PartInfo[], pooled: boolean): Promise<void> {
  const missing: string[] = [];
  for (const file of files) {
    const size = await stat(source(file)).then((s) => s.size, () => -1);
    if (size !== file.bytes) missing.push(file.path);
  }
  if (missing.length > 0) {
    const where = path.dirname(path.dirname(source(files.find((f) => missing.includes(f.path))!)));
    throw new CorruptArchiveError(`${missing.length} attachment file(s) missing from ${where} (first: ${missing[0]}): an archive needs the ${POOL_DIR}/ folder that lies beside it (copy both, or use parley pull)`);
  }
  if (!pooled) return;
  for (const file of files) {
    if ((await sha256File(source(file))) !== file.sha256) throw new CorruptArchiveError(`attachment ${file.path}: ${source(file)} differs from the manifest's SHA-256`);
  }
}

/**
 * Removes everything inside the attachment store, not the folder itself: in compose and Kubernetes
 * it is a volume's mount point, which cannot be removed (restore --force failed there, after it
 * had dropped the database and the streams).
 */
export async function emptyAttachmentStore(dir: string): Promise<void> {
  const entries = await readdir(dir).catch((error: { code?: string }) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  for (const entry of entries) await rm(path.join(dir, entry), { recursive: true, force: true });
}

/** Copies the archive's attachment files into the target store, each checked against the manifest. */
export async function restoreAttachments(source: (file: PartInfo) => string, files: PartInfo[], target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  for (const file of files) {
    const rel = path.relative(ATTACHMENTS_PART, file.path);
    const dest = path.join(target, rel);
    if (path.relative(target, dest).startsWith('..')) throw new CorruptArchiveError(`manifest names a path outside the attachment store: ${file.path}`);
    await mkdir(path.dirname(dest), { recursive: true });
    await copyFile(source(file), dest);
    if ((await sha256File(dest)) !== file.sha256) throw new CorruptArchiveError(`attachment ${file.path}: content differs from the manifest's SHA-256`);
  }
}
