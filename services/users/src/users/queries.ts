import type { Queryable } from '@parley/pg';
import { identityKey, type UserView } from '@parley/contracts';

export interface UserRow {
  id: string;
  username: string;
  email: string;
  display_name: string;
  bio: string;
  avatar_url: string | null;
  password_hash: string;
  created_at: Date;
  email_verified: boolean;
}

const COLUMNS = 'id, username, email, display_name, bio, avatar_url, password_hash, created_at, email_verified';

export async function findUserById(db: Queryable, id: string): Promise<UserRow | null> {
  const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users.users WHERE id = $1`, [id]);
  return rows[0] ?? null;
}

/** `login` is a username or an e-mail address, compared case-insensitively. */
export async function findUserByLogin(db: Queryable, login: string): Promise<UserRow | null> {
  const { rows } = await db.query<UserRow>(
    `SELECT ${COLUMNS} FROM users.users WHERE username_lower = $1 OR email_lower = $1 LIMIT 1`,
    [identityKey(login)],
  );
  return rows[0] ?? null;
}

export async function takenIdentities(db: Queryable, username: string, email: string): Promise<{ username: boolean; email: boolean }> {
  const { rows } = await db.query<{ u: boolean; e: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM users.users WHERE username_lower = $1) AS u,
            EXISTS (SELECT 1 FROM users.users WHERE email_lower = $2) AS e`,
    [identityKey(username), identityKey(email)],
  );
  return { username: rows[0]?.u ?? false, email: rows[0]?.e ?? false };
}

export async function existingUserIds(db: Queryable, ids: string[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM users.users WHERE id = ANY($1::uuid[])', [ids]);
  return rows.map((r) => r.id);
}

export function toUserView(row: UserRow, withEmail = false): UserView {
  return {
    id: row.id,
    username: row.username,
    displayName: row.display_name,
    bio: row.bio,
    avatarUrl: row.avatar_url,
    createdAt: row.created_at.toISOString(),
    ...(withEmail ? { email: row.email, emailVerified: row.email_verified } : {}),
  };
}

/** Prefix search on username or display name, case-insensitive, ordered by username. */
export async function searchUsers(db: Queryable, prefix: string, limit: number, after: string | null): Promise<UserRow[]> {
  const pattern = `${prefix.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const { rows } = await db.query<UserRow>(
    `SELECT ${COLUMNS} FROM users.users
      WHERE (username_lower LIKE $1 OR lower(display_name) LIKE $1) AND ($2::text IS NULL OR username_lower > $2)
      ORDER BY username_lower LIMIT $3`,
    [pattern, after, limit],
  );
  return rows;
}

/** Several users by id (for contact lists), in no particular order. */
export async function findUsersByIds(db: Queryable, ids: string[]): Promise<UserRow[]> {
  if (ids.length === 0) return [];
  const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users.users WHERE id = ANY($1::uuid[])`, [ids]);
  return rows;
}

/**
 * An erased account as others see it (their chats keep its messages unless it asked for a purge):
 * the id and nothing else about the person.
 */
export async function erasedUserView(db: Queryable, id: string): Promise<UserView | null> {
  const { rows } = await db.query<{ erased_at: Date }>('SELECT erased_at FROM users.erased_users WHERE id = $1', [id]);
  const row = rows[0];
  if (!row) return null;
  return { id, username: 'deleted', displayName: 'Deleted account', bio: '', avatarUrl: null, createdAt: row.erased_at.toISOString(), deleted: true };
}
