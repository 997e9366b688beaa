import type { Queryable } from '@parley/pg';
import { answersWithin, MAX_CHAT_PEERS, SETUP_ANSWER_BYTES, type Audience } from '@parley/contracts';

export interface PrivacySettings {
  groupAdd: Audience;
  presence: Audience;
}

export async function privacyOf(db: Queryable, userId: string): Promise<PrivacySettings | null> {
  const { rows } = await db.query<{ group_add: Audience; presence: Audience }>(
    'SELECT privacy_group_add AS group_add, privacy_presence AS presence FROM users.users WHERE id = $1',
    [userId],
  );
  return rows[0] ? { groupAdd: rows[0].group_add, presence: rows[0].presence } : null;
}

/**
 * Of `userIds`, those that exist, and those that refuse `actorId`: they blocked the actor, or (to
 * be added to a group) their `groupAdd` is `nobody`, or `contacts` and the actor is not one of
 * theirs. Starting a direct chat is refused by a block only: a stranger may still write to you.
 */
export async function admission(db: Queryable, actorId: string, userIds: string[], purpose: 'direct' | 'group'): Promise<{ existing: string[]; refused: string[] }> {
  if (userIds.length === 0) return { existing: [], refused: [] };
  const { rows } = await db.query<{ id: string; refused: boolean }>(
    `SELECT u.id,
            EXISTS (SELECT 1 FROM users.blocks b WHERE b.user_id = u.id AND b.blocked_id = $1)
            OR ($3 = 'group' AND u.id <> $1 AND (
                 u.privacy_group_add = 'nobody'
                 OR (u.privacy_group_add = 'contacts' AND NOT EXISTS (SELECT 1 FROM users.contacts c WHERE c.user_id = u.id AND c.contact_id = $1))
               )) AS refused
       FROM users.users u WHERE u.id = ANY($2::uuid[])`,
    [actorId, userIds, purpose],
  );
  return { existing: rows.map((r) => r.id), refused: rows.filter((r) => r.refused).map((r) => r.id) };
}

/**
 * Who hears when `userId` comes online or goes offline (issue 23, finding 8), by the user's
 * `presence` setting: `everyone` — chat peers and whoever has the user as a contact (the protocol's
 * rule before privacy settings); `contacts` — chat peers and mutual contacts only, so adding
 * someone one-sidedly reveals nothing; `nobody` — no one. Never anyone the user blocked.
 */
export async function presenceAudience(db: Queryable, userId: string): Promise<{ userIds: string[]; chatPeers: boolean; blocked: string[] }> {
  const settings = await privacyOf(db, userId);
  if (!settings || settings.presence === 'nobody') return { userIds: [], chatPeers: false, blocked: [] };
  const { rows: blocked } = await db.query<{ blocked_id: string }>('SELECT blocked_id FROM users.blocks WHERE user_id = $1 LIMIT 5000', [userId]);
  const mutual = settings.presence === 'contacts';
  const { rows } = await db.query<{ user_id: string }>(
    `SELECT c.user_id FROM users.contacts c
      WHERE c.contact_id = $1
        AND NOT EXISTS (SELECT 1 FROM users.blocks b WHERE b.user_id = $1 AND b.blocked_id = c.user_id)
        AND (NOT $2 OR EXISTS (SELECT 1 FROM users.contacts m WHERE m.user_id = $1 AND m.contact_id = c.user_id))
      LIMIT 5000`,
    [userId, mutual],
  );
  return { userIds: rows.map((r) => r.user_id), chatPeers: true, blocked: blocked.map((r) => r.blocked_id) };
}

/**
 * The other side of presenceAudience, for the snapshots of a gateway's batch of new sockets: for
 * each viewer, of their contacts and their `chatPeerIds`, those whose presence they may see by the
 * same rules — not `nobody`; never someone who blocked the viewer; a chat peer always otherwise; a
 * contact only, under `contacts`, when the contact has the viewer as a contact too. One query for
 * the batch; at most 5,000 per viewer. Stops adding viewers once the answer holds about
 * `budgetBytes` of ids (the first always goes in); the caller asks again for the rest.
 */
export async function presenceVisibleMany(
  db: Queryable,
  viewers: { viewerId: string; chatPeerIds: string[] }[],
  budgetBytes = SETUP_ANSWER_BYTES,
): Promise<string[][]> {
  const { rows } = await db.query<{ i: string; id: string }>(
    `WITH viewers AS (SELECT v.id, v.i FROM unnest($1::uuid[]) WITH ORDINALITY AS v(id, i)),
     candidates AS (
       SELECT v.i, c.contact_id AS id, false AS peer FROM viewers v JOIN users.contacts c ON c.user_id = v.id
       UNION ALL
       SELECT p.i, p.id, true FROM unnest($2::bigint[], $3::uuid[]) AS p(i, id)
     )
     SELECT v.i, u.id FROM viewers v JOIN candidates c ON c.i = v.i JOIN users.users u ON u.id = c.id
      WHERE u.id <> v.id
        AND u.privacy_presence <> 'nobody'
        AND NOT EXISTS (SELECT 1 FROM users.blocks b WHERE b.user_id = u.id AND b.blocked_id = v.id)
      GROUP BY v.i, v.id, u.id, u.privacy_presence
     HAVING bool_or(c.peer)
         OR u.privacy_presence = 'everyone'
         OR EXISTS (SELECT 1 FROM users.contacts m WHERE m.user_id = u.id AND m.contact_id = v.id)`,
    [viewers.map((v) => v.viewerId), viewers.flatMap((v, i) => v.chatPeerIds.map(() => i + 1)), viewers.flatMap((v) => v.chatPeerIds)],
  );
  const visible: string[][] = viewers.map(() => []);
  for (const row of rows) {
    const ids = visible[Number(row.i) - 1]!;
    if (ids.length < MAX_CHAT_PEERS) ids.push(row.id);
  }
  return answersWithin(visible, (ids) => ids.length, budgetBytes);
}

export async function blockedBy(db: Queryable, userId: string): Promise<{ userId: string; blockedAt: string }[]> {
  const { rows } = await db.query<{ blocked_id: string; blocked_at: Date }>(
    'SELECT blocked_id, blocked_at FROM users.blocks WHERE user_id = $1 ORDER BY blocked_at, blocked_id LIMIT 1000',
    [userId],
  );
  return rows.map((r) => ({ userId: r.blocked_id, blockedAt: r.blocked_at.toISOString() }));
}

export async function hasBlocked(db: Queryable, userId: string, blockedId: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM users.blocks WHERE user_id = $1 AND blocked_id = $2', [userId, blockedId]);
  return (rowCount ?? 0) > 0;
}
