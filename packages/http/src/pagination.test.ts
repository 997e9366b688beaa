import { describe, expect, it } from 'vitest';
import { InvalidRequest } from './errors.js';
import { cursorField, decodeCursor, encodeCursor, pageLimit } from './pagination.js';

interface Cursor {
  seq: number;
}
const isCursor = (v: unknown): v is Cursor =>
  typeof v === 'object' && v !== null && typeof (v as { seq?: unknown }).seq === 'number';

describe('pageLimit', () => {
  it('defaults to 50', () => {
    expect(pageLimit(undefined)).toBe(50);
  });

  it('accepts 1 to 200', () => {
    expect(pageLimit('1')).toBe(1);
    expect(pageLimit('200')).toBe(200);
    expect(pageLimit('37')).toBe(37);
  });

  it.each(['0', '201', '-5', 'abc', ''])('refuses %j with InvalidRequest', (raw) => {
    expect(() => pageLimit(raw)).toThrow(InvalidRequest);
    expect(() => pageLimit(raw)).toThrow('limit must be between 1 and 200');
  });
});

describe('cursors', () => {
  it('round-trip through an opaque, URL-safe string', () => {
    const cursor = { seq: 42, id: '0193a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b', at: '2026-01-01T00:00:00.000Z' };
    const encoded = encodeCursor(cursor);
    expect(encoded).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(encoded).not.toContain('seq');
    expect(decodeCursor(encoded, isCursor)).toEqual(cursor);
  });

  it('treat an absent or empty cursor as the first page', () => {
    expect(decodeCursor(undefined, isCursor)).toBeNull();
    expect(decodeCursor('', isCursor)).toBeNull();
  });

  it('refuse garbage and well-formed JSON of the wrong shape with InvalidRequest', () => {
    for (const raw of ['%%%not-base64', Buffer.from('{not json').toString('base64url'), encodeCursor({ seq: 'one' }), encodeCursor(null)]) {
      let error: unknown;
      try {
        decodeCursor(raw, isCursor);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidRequest);
      expect((error as InvalidRequest).status).toBe(400);
      expect((error as InvalidRequest).toBody()).toEqual({ error: { code: 'invalid_request', message: 'Invalid cursor' } });
    }
  });
});

describe('cursorField (issue 23, finding 10: what the database cannot hold is a 400, not a 500)', () => {
  it('takes whole numbers up to PostgreSQL integer, not beyond, not fractions', () => {
    expect(cursorField.int(1, 1)).toBe(true);
    expect(cursorField.int(2_147_483_647, 1)).toBe(true);
    expect(cursorField.int(2_147_483_648, 1)).toBe(false);
    expect(cursorField.int(1e300, 1)).toBe(false);
    expect(cursorField.int(0, 1)).toBe(false);
    expect(cursorField.int(1.5)).toBe(false);
    expect(cursorField.int('7')).toBe(false);
  });
  it('takes instants in toISOString format from year 1 to 9999', () => {
    expect(cursorField.instant(new Date(0).toISOString())).toBe(true);
    expect(cursorField.instant('9999-12-31T23:59:59.999Z')).toBe(true);
    expect(cursorField.instant('+275760-09-13T00:00:00.000Z')).toBe(false);
    expect(cursorField.instant('0000-01-01T00:00:00.000Z')).toBe(false);
    expect(cursorField.instant('2026-02-30T00:00:00Z')).toBe(false);
    expect(cursorField.instant('Tue, 01 Dec 2026 00:00:00 GMT')).toBe(false);
    expect(cursorField.instant(1_700_000_000_000)).toBe(false);
  });
  it('takes finite numbers only as a rank', () => {
    expect(cursorField.real(0.25)).toBe(true);
    expect(cursorField.real(Number.POSITIVE_INFINITY)).toBe(false);
    expect(cursorField.real(Number.NaN)).toBe(false);
  });
});
