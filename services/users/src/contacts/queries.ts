import type { Queryable } from '@parley/pg';

export async function contactIds(db: Queryable, userId: string): Promise<string[]> {
  const { rows } = await db.query<{ contact_id: string }>(
    'SELECT contact_id FROM users.contacts WHERE user_id = $1 ORDER BY added_at, contact_id',
    [userId],
  );
  return rows.map((r) => r.contact_id);
}

export async function isContact(db: Queryable, userId: string, contactId: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM users.contacts WHERE user_id = $1 AND contact_id = $2', [userId, contactId]);
  return rowCount === 1;
}
