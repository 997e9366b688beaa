import { mkdtempSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { archiveName } from './archive.js';
import { attachmentSource, collectPool, emptyAttachmentStore, POOL_DIR, poolAttachments, poolPath, poolReferences, requireAttachments } from './attachments.js';
import type { Manifest } from './manifest.js';
import { rotateDirectory } from './rotate.js';

// The attachment pool beside the archives (issue 20: attachments backed up incrementally, not
// copied whole into every archive), on real files in a temporary folder.

describe('the attachment pool', () => {
  const dirs: string[] = [];
  const temp = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'parley-pool-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  async function store(files: Record<string, string>): Promise<string> {
    const dir = temp();
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
      await writeFile(path.join(dir, rel), content);
    }
    return dir;
  }

  it('restore --force empties the attachment store but keeps the folder, which may be a mount point', async () => {
    const dir = await store({ 'ab/one': 'first file', 'cd/two': 'second file', 'loose.partial': 'half' });
    const before = statSync(dir).ino;
    await emptyAttachmentStore(dir);
    expect(await readdir(dir)).toEqual([]);
    expect(statSync(dir).ino).toBe(before);
    // A store that does not exist yet is already empty.
    await emptyAttachmentStore(path.join(dir, 'missing'));
  });

  it('copies a file once: the next backup adds only what is new, and two files with one content share a copy', async () => {
    const source = await store({ 'ab/one': 'first file', 'cd/two': 'second file', 'ef/twin': 'first file', 'gh/upload.partial': 'half' });
    const backups = temp();
    const pool = path.join(backups, POOL_DIR);
    const first = await poolAttachments(source, pool);
    expect(first.files.map((f) => f.path)).toEqual(['attachments/ab/one', 'attachments/cd/two', 'attachments/ef/twin']);
    expect(first.added).toBe(2);
    expect(await readFile(poolPath(pool, first.files[0]!.sha256), 'utf8')).toBe('first file');

    await writeFile(path.join(source, 'cd/three'), 'third file');
    const second = await poolAttachments(source, pool);
    expect(second.added).toBe(1);
    expect(second.addedBytes).toBe('third file'.length);
    expect(second.files).toHaveLength(4);
  });

  it('restores from the pool, and refuses before anything is copied when the pool is not beside the archive', async () => {
    const source = await store({ 'ab/one': 'first file' });
    const backups = temp();
    const { files, bytes } = await poolAttachments(source, path.join(backups, POOL_DIR));
    const manifest = { attachments: { files, bytes, pool: POOL_DIR } } as Manifest;
    const archive = path.join(backups, archiveName('prod', new Date('2026-12-01T02:00:00Z')));
    await expect(requireAttachments(attachmentSource(archive, manifest, '/nowhere'), files, true)).resolves.toBeUndefined();
    const elsewhere = path.join(temp(), path.basename(archive));
    await expect(requireAttachments(attachmentSource(elsewhere, manifest, '/nowhere'), files, true)).rejects.toThrow(/1 attachment file\(s\) missing .*files\/ folder that lies beside it/);
  });

  it('rotation deletes the pool files no kept archive names, after a grace for a backup running beside it', async () => {
    const source = await store({ 'ab/old': 'only in the old archive', 'cd/both': 'in both archives' });
    const backups = temp();
    const pool = path.join(backups, POOL_DIR);
    const write = async (iso: string, files: Awaited<ReturnType<typeof poolAttachments>>['files']) => {
      const archive = path.join(backups, archiveName('prod', new Date(iso)));
      await writeFile(archive, 'archive');
      await writeFile(`${archive}.sha256`, 'x');
      await writeFile(`${archive}.files`, poolReferences(files));
      return archive;
    };
    const oldFiles = (await poolAttachments(source, pool)).files;
    const old = await write('2026-11-01T02:00:00Z', oldFiles);
    await rm(path.join(source, 'ab/old'));
    const newFiles = (await poolAttachments(source, pool)).files;
    const fresh = await write('2026-12-01T02:00:00Z', newFiles);
    // A copy a killed run left, and a file a running backup just added (no sidecar names it yet).
    const killed = `${poolPath(pool, 'f'.repeat(64))}.partial`;
    await mkdir(path.dirname(killed), { recursive: true });
    await writeFile(killed, 'half');
    const running = poolPath(pool, 'e'.repeat(64));
    await mkdir(path.dirname(running), { recursive: true });
    await writeFile(running, 'just added');
    const hoursAgo = new Date(Date.now() - 4 * 3600_000);
    const onlyOld = oldFiles.find((f) => f.path.endsWith('ab/old'))!;
    for (const file of [poolPath(pool, onlyOld.sha256), killed]) await utimes(file, hoursAgo, hoursAgo);

    const { removed, pool: collected } = await rotateDirectory(backups, { daily: 1, weekly: 0, monthly: 0 });
    expect(removed).toEqual([path.basename(old)]);
    expect(collected.removed).toBe(2);
    const left = (await readdir(pool, { recursive: true })).filter((f) => /[0-9a-f]{64}/.test(f)).map((f) => path.basename(f)).sort();
    expect(left).toEqual([...new Set([...newFiles.map((f) => f.sha256), 'e'.repeat(64)])].sort());
    expect(await readdir(backups)).not.toContain(`${path.basename(old)}.files`);
    expect(await readdir(backups)).toContain(`${path.basename(fresh)}.files`);
    // Without a grace the running backup's file would have gone too.
    expect((await collectPool(backups, [path.basename(fresh)], 0)).removed).toBe(1);
  });
});
