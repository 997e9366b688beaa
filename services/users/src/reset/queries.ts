import type { Queryable } from '@parley/pg';

/**
 * Uses a reset token: one UPDATE that only succeeds on an unused, unexpired token requested after
 * the account's last password change (a reset or a change ends every other outstanding token), so
 * of two concurrent confirmations with the same token exactly one gets the row. `usedAt` is the time the
 * PasswordResetCompleted event will carry, so a rebuilt row matches the live one.
 */
export async function consumeResetToken(db: Queryable, tokenHash: Buffer, usedAt: Date): Promise<{ resetId: string; userId: string } | null> {
  const { rows } = await db.query<{ id: string; user_id: string }>(
    `UPDATE users.password_resets r SET used_at = $2
       FROM users.users u
      WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now()
        AND u.id = r.user_id AND r.requested_at > COALESCE(u.password_changed_at, '-infinity')
      RETURNING r.id, r.user_id`,
    [tokenHash, usedAt],
  );
  const row = rows[0];
  return row ? { resetId: row.id, userId: row.user_id } : null;
}

/** Gives a consumed token back when the password change it was used for could not be stored. */
export async function releaseResetToken(db: Queryable, resetId: string): Promise<void> {
  await db.query('UPDATE users.password_resets SET used_at = NULL WHERE id = $1', [resetId]);
}
