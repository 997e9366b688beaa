import { copyFile, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { listFiles, sha256File } from './files.js';
import type { PartInfo } from './manifest.js';

export const ATTACHMENTS_PART = 'attachments';

/**
 * Copies the attachment store into the staging directory. Runs after the stream export, so every
 * file an exported event refers to is already there (the gateway writes the file before the
 * metadata event). Uploads still being written (`.partial`) are skipped; a file deleted while
 * this runs is skipped too (its deletion event is in the streams or comes later).
 */
export async function copyAttachments(source: string, staging: string): Promise<{ files: PartInfo[]; bytes: number }> {
  const files: PartInfo[] = [];
  let bytes = 0;
  for (const rel of await listFiles(source)) {
    if (rel.endsWith('.partial')) continue;
    const target = path.join(staging, ATTACHMENTS_PART, rel);
    await mkdir(path.dirname(target), { recursive: true });
    try {
      await copyFile(path.join(source, rel), target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    const size = (await stat(target)).size;
    files.push({ path: `${ATTACHMENTS_PART}/${rel}`, bytes: size, sha256: await sha256File(target) });
    bytes += size;
  }
  return { files, bytes };
}

/** Copies the archive's attachment files into the target store. */
export async function restoreAttachments(extracted: string, files: PartInfo[], target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  for (const file of files) {
    const rel = path.relative(ATTACHMENTS_PART, file.path);
    const dest = path.join(target, rel);
    await mkdir(path.dirname(dest), { recursive: true });
    await copyFile(path.join(extracted, file.path), dest);
  }
}
