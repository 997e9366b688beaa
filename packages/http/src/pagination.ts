import { Type } from '@sinclair/typebox';
import { inputIssue } from '@parley/contracts';
import { InvalidRequest } from './errors.js';

/** api.md: `?limit=` (default 50, max 200) and `?before=<cursor>`; cursors are opaque to clients. */
export const PageQuery = {
  limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}$' })),
  before: Type.Optional(Type.String({ maxLength: 512 })),
};

/**
 * The most a page's items may take as JSON. Every API answer goes back to the gateway as one NATS
 * reply, and NATS refuses one over its `max_payload` (1 MiB by default): a page of 200 long
 * Cyrillic messages (8 KB each), or of messages made of control characters (6 bytes each as
 * JSON), was refused, and the page answered 503 for every member of the chat, every time.
 */
export const PAGE_BYTES = 512 * 1024;

/**
 * How many of `items`, from the first, fit in PAGE_BYTES as JSON: at least one (a single item is
 * bounded by the input limits). A page cut short still has a cursor: shorter pages are allowed.
 */
export function itemsWithinBudget(items: readonly unknown[], budget = PAGE_BYTES): number {
  let bytes = 0;
  for (let i = 0; i < items.length; i++) {
    bytes += Buffer.byteLength(JSON.stringify(items[i])) + 1;
    if (bytes > budget) return Math.max(1, i);
  }
  return items.length;
}

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
    // Its strings reach queries as text: the router's input rules (no U+0000, no lone surrogate)
    // hold inside a cursor too, where the router sees only base64.
    if (isValid(value) && !inputIssue(value)) return value;
  } catch {
    // fall through
  }
  throw new InvalidRequest('Invalid cursor');
}

/** PostgreSQL's `integer`: a cursor's seq or position beyond it would be a 500 from the query, not a 400. */
const PG_INT_MAX = 2_147_483_647;
/** An ISO 8601 instant as toISOString writes it, years 0001-9999 (what PostgreSQL's timestamptz takes). */
const ISO_INSTANT = /^(?!0000)\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?Z$/;

/**
 * Checks for cursor fields (issue 23, finding 10): a well-formed cursor with a number or a date the
 * database cannot hold must be a 400 like any other bad cursor, not a 500 from the query.
 */
export const cursorField = {
  /** A whole number in [min, PostgreSQL integer max]. */
  int: (v: unknown, min = 0, max = PG_INT_MAX): v is number => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max,
  /** A finite number (a float8 such as a search rank). */
  real: (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v),
  /** An instant in toISOString's format, years 0001-9999. */
  // The date must survive a round trip: JavaScript rolls 2026-02-30 over to March, PostgreSQL refuses it.
  instant: (v: unknown): v is string => typeof v === 'string' && ISO_INSTANT.test(v) && Number.isFinite(Date.parse(v)) && new Date(v).toISOString().slice(0, 10) === v.slice(0, 10),
};
