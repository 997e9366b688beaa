import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveName, CorruptArchiveError } from './archive.js';
import { sha256File } from './files.js';
import { OffsiteStore, parseS3Url } from './offsite.js';
import { POOL_DIR, poolPath } from './attachments.js';

// Off-site copies against a local S3-compatible server (s3rver, from the npm registry: no MinIO
// installs on these machines) with the real AWS SDK client, as an operator's MinIO would be used.

const BUCKET = 'parley-offsite';

describe('off-site copies (BACKUP_S3_URL)', () => {
  let dir: string;
  let server: S3rver;
  let endpoint: string;
  const credentials = { AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'parley-offsite-'));
    server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: path.join(dir, 's3'), configureBuckets: [{ name: BUCKET, configs: [] }] });
    const { port } = (await server.run()) as AddressInfo;
    endpoint = `http://127.0.0.1:${port}`;
    // s3rver's fixed credentials, through the SDK's usual chain (the environment), as in production.
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
    for (const [key, value] of Object.entries(credentials)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  const store = (prefix: string) => new OffsiteStore({ url: `s3://${BUCKET}/${prefix}`, endpoint, region: 'us-east-1' });

  /** An archive-shaped file with its .sha256 (and .verified) as `backup` and `verify` leave them. */
  async function archiveAt(iso: string, bytes: number, verified: boolean): Promise<string> {
    const file = path.join(dir, archiveName('prod', new Date(iso)));
    await writeFile(file, randomBytes(bytes));
    await writeFile(`${file}.sha256`, `${await sha256File(file)}  ${path.basename(file)}\n`);
    if (verified) await writeFile(`${file}.verified`, '{}\n');
    return file;
  }

  it('parses s3:// addresses and refuses anything else', () => {
    expect(parseS3Url('s3://backups/parley/prod/')).toEqual({ bucket: 'backups', prefix: 'parley/prod/' });
    expect(parseS3Url('s3://backups')).toEqual({ bucket: 'backups', prefix: '' });
    for (const bad of ['https://backups/x', 's3://', 's3://B/x']) expect(() => parseS3Url(bad)).toThrow(/BACKUP_S3_URL/);
  });

  it('uploads archives (multipart when big), lists only complete ones, and rotates there keeping the newest verified', async () => {
    const s = store('rotation');
    try {
      // A verified archive three days old, then two unverified newer ones; one big enough for a
      // multipart upload (16 MiB parts).
      const old = await archiveAt('2026-12-01T02:00:00Z', 1024, true);
      const big = await archiveAt('2026-12-03T02:00:00Z', 17 * 1024 * 1024 + 5, false);
      const newest = await archiveAt('2026-12-04T02:00:00Z', 2048, false);
      for (const file of [old, big, newest]) await s.push(file, file === old);
      // An upload that died before its .sha256: not a complete archive, never listed or restored.
      await rawClient().send(new PutObjectCommand({ Bucket: BUCKET, Key: `rotation/${archiveName('prod', new Date('2026-12-04T03:00:00Z'))}`, Body: 'half' }));

      expect((await s.list()).map((a) => [path.basename(a.name), a.verified])).toEqual([
        [path.basename(newest), false],
        [path.basename(big), false],
        [path.basename(old), true],
      ]);
      const { kept, removed } = await s.rotate({ daily: 1, weekly: 0, monthly: 0 });
      expect([...kept.keys()].sort()).toEqual([path.basename(old), path.basename(newest)].sort());
      expect(kept.get(path.basename(old))).toEqual(['newest-verified']);
      expect(removed).toEqual([path.basename(big)]);
      expect((await s.list()).map((a) => a.name)).toEqual([path.basename(newest), path.basename(old)]);

      // `latest` is the newest verified archive, downloaded and checked against its .sha256.
      const into = path.join(dir, 'restore-here');
      const pulled = await s.pull('latest', into);
      expect(path.basename(pulled)).toBe(path.basename(old));
      expect(await readFile(pulled)).toEqual(await readFile(old));
      expect((await readdir(into)).sort()).toEqual([path.basename(old), `${path.basename(old)}.sha256`]);
    } finally {
      s.close();
    }
  }, 60_000);

  it('sends each attachment file up once, brings back the ones an archive needs, and rotates them with the archives', async () => {
    const s = store('pooled');
    try {
      // Two archives sharing one attachment file; the older one also has a file of its own.
      const local = path.join(dir, 'pooled-local');
      const pool = path.join(local, POOL_DIR);
      const put = async (content: string) => {
        const sha = createHash('sha256').update(content).digest('hex');
        await mkdir(path.dirname(poolPath(pool, sha)), { recursive: true });
        await writeFile(poolPath(pool, sha), content);
        return sha;
      };
      const [shared, own] = [await put('shared attachment'), await put('only the old archive')];
      const archive = async (iso: string, shas: string[]) => {
        const file = path.join(local, archiveName('prod', new Date(iso)));
        await writeFile(file, randomBytes(512));
        await writeFile(`${file}.sha256`, `${await sha256File(file)}  ${path.basename(file)}\n`);
        await writeFile(`${file}.files`, shas.map((x) => `${x}\n`).join(''));
        return file;
      };
      const older = await archive('2026-11-01T02:00:00Z', [shared, own]);
      const newer = await archive('2026-12-01T02:00:00Z', [shared]);
      expect(await s.push(older, true)).toMatchObject({ poolFiles: 2 });
      expect(await s.push(newer, true)).toMatchObject({ poolFiles: 0 });

      const into = path.join(dir, 'pooled-restore');
      await s.pull(path.basename(older), into);
      expect(await readFile(poolPath(path.join(into, POOL_DIR), own), 'utf8')).toBe('only the old archive');
      expect(await readFile(`${path.join(into, path.basename(older))}.files`, 'utf8')).toBe(await readFile(`${older}.files`, 'utf8'));

      // The old archive rotates away; the file only it named goes with it, the shared one stays.
      const { removed, poolRemoved } = await s.rotate({ daily: 1, weekly: 0, monthly: 0 }, 0);
      expect(removed).toEqual([path.basename(older)]);
      expect(poolRemoved).toBe(1);
      const again = path.join(dir, 'pooled-again');
      await s.pull('latest', again);
      expect(await readFile(poolPath(path.join(again, POOL_DIR), shared), 'utf8')).toBe('shared attachment');
    } finally {
      s.close();
    }
  });

  it('refuses a download that does not match its checksum and leaves nothing behind', async () => {
    const s = store('tampered');
    try {
      const file = await archiveAt('2026-12-02T02:00:00Z', 4096, true);
      await s.push(file, true);
      await rawClient().send(new PutObjectCommand({ Bucket: BUCKET, Key: `tampered/${path.basename(file)}`, Body: randomBytes(4096) }));
      const into = path.join(dir, 'tampered-here');
      await expect(s.pull(path.basename(file), into)).rejects.toThrow(CorruptArchiveError);
      expect(await readdir(into)).toEqual([]);
      await expect(s.pull('parley-prod-20200101T000000Z.tar.gz', into)).rejects.toThrow(/not a complete archive/);
    } finally {
      s.close();
    }
  });

  function rawClient(): S3Client {
    return new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  }
});
