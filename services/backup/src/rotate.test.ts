import { describe, expect, it } from 'vitest';
import { archiveName, archiveTime } from './archive.js';
import { isoWeek, selectArchives, type ArchiveEntry } from './rotate.js';

/** One archive per day at 02:00 UTC for `days` days ending on `last`. */
function daily(last: string, days: number, verified: string[] = []): ArchiveEntry[] {
  const end = new Date(`${last}T02:00:00Z`).getTime();
  return Array.from({ length: days }, (_, i) => {
    const time = new Date(end - i * 86_400_000);
    const name = archiveName('prod', time);
    return { name, time, verified: verified.includes(time.toISOString().slice(0, 10)) };
  });
}

const policy = { daily: 7, weekly: 4, monthly: 6 };
const day = (name: string) => archiveTime(name)!.toISOString().slice(0, 10);

describe('rotation (selectArchives)', () => {
  it('keeps everything while there are fewer archives than the policy covers', () => {
    const archives = daily('2026-11-29', 5);
    expect(selectArchives(archives, policy).remove).toEqual([]);
  });

  it('keeps the last 7 days, the newest of each of the last 4 ISO weeks and of the last 6 months', () => {
    const archives = daily('2026-11-29', 400); // Sunday 2026-11-29 back to late 2025
    const { keep, remove } = selectArchives(archives, policy);
    const kept = [...keep.keys()].map(day).sort();
    expect(kept).toEqual([
      // months: newest archive of Jun…Nov (the newest of November is the 29th itself)
      '2026-06-30', '2026-07-31', '2026-08-31', '2026-09-30', '2026-10-31',
      // weeks: the Sundays ending ISO weeks 45, 46, 47 (week 48's newest is the 29th)
      '2026-11-08', '2026-11-15',
      // days: 23…29 (the 22nd is week 47's Sunday, already kept as a day)
      '2026-11-22', '2026-11-23', '2026-11-24', '2026-11-25', '2026-11-26', '2026-11-27', '2026-11-28', '2026-11-29',
    ]);
    expect(keep.get(archiveName('prod', new Date('2026-11-29T02:00:00Z')))).toEqual(['daily', 'weekly', 'monthly']);
    expect(remove).toHaveLength(400 - kept.length);
  });

  it('never deletes the newest verified archive, however old', () => {
    const archives = daily('2026-11-29', 400, ['2025-12-01', '2025-12-02']);
    const { keep, remove } = selectArchives(archives, policy);
    const verified = archiveName('prod', new Date('2025-12-02T02:00:00Z'));
    expect(keep.get(verified)).toEqual(['newest-verified']);
    expect(remove).toContain(archiveName('prod', new Date('2025-12-01T02:00:00Z')));
    expect(remove).not.toContain(verified);
  });

  it('keeps the newest of several archives on one day', () => {
    const morning = { name: archiveName('prod', new Date('2026-11-29T02:00:00Z')), time: new Date('2026-11-29T02:00:00Z'), verified: false };
    const evening = { name: archiveName('prod', new Date('2026-11-29T20:00:00Z')), time: new Date('2026-11-29T20:00:00Z'), verified: false };
    expect(selectArchives([morning, evening], { daily: 1, weekly: 0, monthly: 0 })).toEqual({ keep: new Map([[evening.name, ['daily']]]), remove: [morning.name] });
  });

  it('keeps nothing but the newest verified one with a zero policy', () => {
    const archives = daily('2026-11-29', 3, ['2026-11-28']);
    const { keep, remove } = selectArchives(archives, { daily: 0, weekly: 0, monthly: 0 });
    expect([...keep.keys()].map(day)).toEqual(['2026-11-28']);
    expect(remove.map(day)).toEqual(['2026-11-29', '2026-11-27']);
  });
});

describe('archive names and ISO weeks', () => {
  it('round-trips the UTC timestamp in the name', () => {
    const at = new Date('2026-01-05T23:04:05.678Z');
    expect(archiveName('prod', at)).toBe('parley-prod-20260105T230405Z.tar.gz');
    expect(archiveTime('parley-prod-20260105T230405Z.tar.gz')).toEqual(new Date('2026-01-05T23:04:05Z'));
    expect(archiveTime('parley-prod-20260105T230405Z.tar.gz.sha256')).toBeNull();
    expect(archiveTime('notes.txt')).toBeNull();
  });

  it('numbers weeks as ISO 8601 does across year ends', () => {
    expect(isoWeek(new Date('2026-11-29T12:00:00Z'))).toBe('2026-W48');
    expect(isoWeek(new Date('2026-11-30T00:00:00Z'))).toBe('2026-W49');
    expect(isoWeek(new Date('2021-01-03T00:00:00Z'))).toBe('2020-W53');
    expect(isoWeek(new Date('2024-12-30T00:00:00Z'))).toBe('2025-W01');
  });
});
