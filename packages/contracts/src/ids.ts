import { Type } from '@sinclair/typebox';
import { uuidv7 } from 'uuidv7';

/**
 * A new opaque id. UUIDv7 so that ids sort by creation time (api.md asks for sortable ids),
 * which also keeps B-tree inserts append-mostly in Postgres.
 */
export function newId(): string {
  return uuidv7();
}

/** The shape of every id Parley issues (lower-case UUID), as a pattern string for schemas. */
export const UUID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
const UUID_RE = new RegExp(UUID_PATTERN);

/** Schema for an id in a body, param or frame: anything else is a 400 before it reaches SQL or a subject. */
export const Uuid = Type.String({ pattern: UUID_PATTERN });

/** True when `value` has the shape of the ids Parley issues; used to reject junk before it reaches a subject or SQL. */
export function isId(value: unknown): value is string {
  return typeof value === 'string' && UUID_RE.test(value);
}
