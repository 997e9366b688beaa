import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ARCHIVE_PATTERN, archiveTime } from './archive.js';
import { collectPool } from './attachments.js';

export interface ArchiveEntry {
  name: string;
  time: Date;
  /** A `<name>.verified` marker lies beside it (verify passed). */
  verified: boolean;
}

export interface KeepPolicy {
  daily: number;
  weekly: number;
  monthly: number;
}

/** Why an archive is kept, for the log and the tests. */
export type KeepReason = 'daily' | 'weekly' | 'monthly' | 'newest-verified';

/**
 * Grandfather-father-son selection, pure: walking from the newest archive back, the newest archive
 * of each of the last `daily` UTC days that have one is kept, likewise for the last `weekly` ISO
 * weeks and the last `monthly` months. Whatever else is deleted, except the newest verified
 * archive: the one backup known to restore is never rotated away, however old.
 */
export function selectArchives(archives: ArchiveEntry[], policy: KeepPolicy): { keep: Map<string, KeepReason[]>; remove: string[] } {
  const newestFirst = [...archives].sort((a, b) => b.time.getTime() - a.time.getTime() || b.name.localeCompare(a.name));
  const keep = new Map<string, KeepReason[]>();
  const mark = (name: string, reason: KeepReason) => keep.set(name, [...(keep.get(name) ?? []), reason]);
  const buckets: [KeepReason, number, (d: Date) => string][] = [
    ['daily', policy.daily, (d) => d.toISOString().slice(0, 10)],
    ['weekly', policy.weekly, isoWeek],
    ['monthly', policy.monthly, (d) => d.toISOString().slice(0, 7)],
  ];
  for (const [reason, count, bucketOf] of buckets) {
    const seen = new Set<string>();
    for (const a of newestFirst) {
      if (seen.size >= count) break;
      const bucket = bucketOf(a.time);
      if (seen.has(bucket)) continue;
      seen.add(bucket);
      mark(a.name, reason);
    }
  }
  const newestVerified = newestFirst.find((a) => a.verified);
  if (newestVerified) mark(newestVerified.name, 'newest-verified');
  return { keep, remove: newestFirst.filter((a) => !keep.has(a.name)).map((a) => a.name) };
}

/** ISO 8601 week, e.g. 2026-W48 (weeks start on Monday; the year is the week's Thursday's). */
export function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

/** What lies beside an archive and goes with it. */
export const ARCHIVE_SIDECARS = ['.sha256', '.verified', '.files'];

/**
 * selectArchives for a set of archives that may belong to several namespaces (one folder or bucket
 * may hold several installations' archives): each namespace is rotated on its own.
 */
export function selectPerNamespace(archives: ArchiveEntry[], policy: KeepPolicy): { keep: Map<string, KeepReason[]>; remove: string[] } {
  const byNamespace = new Map<string, ArchiveEntry[]>();
  for (const a of archives) {
    const ns = ARCHIVE_PATTERN.exec(a.name)?.[1] ?? '';
    byNamespace.set(ns, [...(byNamespace.get(ns) ?? []), a]);
  }
  const keep = new Map<string, KeepReason[]>();
  const remove: string[] = [];
  for (const group of byNamespace.values()) {
    const selected = selectArchives(group, policy);
    for (const [k, v] of selected.keep) keep.set(k, v);
    remove.push(...selected.remove);
  }
  return { keep, remove };
}

/** Unused pool files younger than this stay: a backup running beside the rotation may be about to name them. */
export const POOL_GRACE_MS = 3 * 3600_000;

/**
 * `rotate <dir>`: applies the selection to the archives in `dir` (with their .sha256, .verified and
 * .files sidecars), then deletes the attachment files in the pool that no kept archive needs.
 */
export async function rotateDirectory(dir: string, policy: KeepPolicy, poolGraceMs = POOL_GRACE_MS): Promise<{ kept: Map<string, KeepReason[]>; removed: string[]; pool: { removed: number; bytes: number } }> {
  const names = await readdir(dir);
  const present = new Set(names);
  const archives: ArchiveEntry[] = [];
  for (const name of names) {
    const time = archiveTime(name);
    if (time) archives.push({ name, time, verified: present.has(`${name}.verified`) });
  }
  const { keep, remove } = selectPerNamespace(archives, policy);
  for (const name of remove) {
    for (const suffix of ['', ...ARCHIVE_SIDECARS]) await rm(path.join(dir, `${name}${suffix}`), { force: true });
  }
  const pool = await collectPool(dir, [...keep.keys()], poolGraceMs);
  return { kept: keep, removed: remove, pool };
}
