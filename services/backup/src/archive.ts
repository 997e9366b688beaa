import { chmod, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import { sha256File } from './files.js';
import { MANIFEST_FORMAT, MANIFEST_PATH, partsOf, READABLE_FORMATS, type Manifest } from './manifest.js';

/** The archive is damaged, truncated or not one of ours: nothing in it is to be trusted. */
export class CorruptArchiveError extends Error {
  override name = 'CorruptArchiveError';
}

export const ARCHIVE_PATTERN = /^parley-([a-z][a-z0-9_-]{0,31})-(\d{8}T\d{6}Z)\.tar\.gz$/;

/** `parley-<namespace>-<UTC timestamp>.tar.gz`, e.g. parley-prod-20261129T020000Z.tar.gz. */
export function archiveName(namespace: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return `parley-${namespace}-${stamp}.tar.gz`;
}

/** The creation time in an archive's name, or null for a file that is not an archive. */
export function archiveTime(name: string): Date | null {
  const m = ARCHIVE_PATTERN.exec(name);
  if (!m?.[2]) return null;
  const s = m[2];
  return new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);
}

/**
 * Packs the staging directory into `archive` (manifest first, so a reader meets it before the
 * bulk), through a `.partial` name renamed at the end: a crash never leaves a plausible-looking
 * half archive under the final name. A `<archive>.sha256` (sha256sum format) is written beside it.
 */
export async function packArchive(staging: string, entries: string[], archive: string): Promise<{ bytes: number; sha256: string }> {
  const partial = `${archive}.partial`;
  try {
    await tar.c({ gzip: true, file: partial, cwd: staging, portable: true, strict: true }, [MANIFEST_PATH, ...entries.filter((e) => e !== MANIFEST_PATH)]);
    const sha256 = await sha256File(partial);
    // Password hashes and every message: for the job's user only, whatever the umask.
    await chmod(partial, 0o600);
    await rename(partial, archive);
    await writeFile(`${archive}.sha256`, `${sha256}  ${path.basename(archive)}\n`);
    return { bytes: (await stat(archive)).size, sha256 };
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/**
 * Checks and unpacks an archive into `dest`: the whole-file checksum when a `.sha256` lies beside
 * it, then gzip and tar integrity (strict: a truncated or garbled stream is an error, not a
 * warning), then the manifest, then the SHA-256 of every part it lists. Any failure is a
 * CorruptArchiveError saying what is wrong.
 */
export async function unpackArchive(archive: string, dest: string): Promise<Manifest> {
  const sidecar = await readFile(`${archive}.sha256`, 'utf8').catch(() => null);
  if (sidecar !== null) {
    const expected = sidecar.trim().split(/\s+/)[0];
    const actual = await sha256File(archive);
    if (actual !== expected) {
      throw new CorruptArchiveError(`${path.basename(archive)}: SHA-256 ${actual} does not match ${path.basename(archive)}.sha256 (${expected}); the archive was changed or truncated after it was written`);
    }
  }
  try {
    await tar.x({ file: archive, cwd: dest, strict: true });
  } catch (error) {
    throw new CorruptArchiveError(`${path.basename(archive)} is corrupt or truncated: ${(error as Error).message}`);
  }
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(path.join(dest, MANIFEST_PATH), 'utf8')) as Manifest;
  } catch (error) {
    throw new CorruptArchiveError(`${path.basename(archive)} has no readable ${MANIFEST_PATH}: ${(error as Error).message}`);
  }
  if (!READABLE_FORMATS.includes(manifest.format)) {
    throw new CorruptArchiveError(`${path.basename(archive)}: manifest format ${manifest.format} is not one this version reads (${READABLE_FORMATS.join(', ')}; it writes ${MANIFEST_FORMAT})`);
  }
  for (const part of partsOf(manifest)) {
    const file = path.join(dest, part.path);
    if (path.relative(dest, file).startsWith('..')) throw new CorruptArchiveError(`manifest names a path outside the archive: ${part.path}`);
    const actual = await sha256File(file).catch(() => null);
    if (actual === null) throw new CorruptArchiveError(`${path.basename(archive)}: part ${part.path} is missing (truncated archive?)`);
    if (actual !== part.sha256) throw new CorruptArchiveError(`${path.basename(archive)}: part ${part.path} has SHA-256 ${actual}, the manifest says ${part.sha256}`);
  }
  return manifest;
}
