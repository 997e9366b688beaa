import { Type } from '@sinclair/typebox';
import { InvalidRequest } from './errors.js';

/** api.md: `?limit=` (default 50, max 200) and `?before=<cursor>`; cursors are opaque to clients. */
export const PageQuery = {
  limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}$' })),
  before: Type.Optional(Type.String({ maxLength: 512 })),
};

export function pageLimit(raw: string | undefined): number {
  if (raw === undefined) return 50;
  const n = Number.parseInt(raw, 10);
  if (!Number.isFinite(n) || n < 1 || n > 200) throw new InvalidRequest('limit must be between 1 and 200');
  return n;
}

export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Decodes a cursor produced by encodeCursor and checks its shape; anything else is a 400. */
export function decodeCursor<T>(raw: string | undefined, isValid: (value: unknown) => value is T): T | null {
  if (raw === undefined || raw === '') return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    if (isValid(value)) return value;
  } catch {
    // fall through
  }
  throw new InvalidRequest('Invalid cursor');
}
