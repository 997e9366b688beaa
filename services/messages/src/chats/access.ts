import type { ChatType, MemberRole } from '@parley/contracts';
import { NotFound } from '@parley/http';
import type { Queryable } from '@parley/pg';

export interface Membership {
  chatType: ChatType;
  role: MemberRole;
}

/**
 * The caller's membership of a chat, or 404: a chat one is not in is indistinguishable from a
 * chat that does not exist (api.md), on every route.
 */
export async function requireMember(db: Queryable, chatId: string, userId: string): Promise<Membership> {
  const { rows } = await db.query<{ type: ChatType; role: MemberRole }>(
    `SELECT c.type, m.role FROM messages.chats c JOIN messages.chat_members m ON m.chat_id = c.id
      WHERE c.id = $1 AND m.user_id = $2`,
    [chatId, userId],
  );
  const row = rows[0];
  if (!row) throw new NotFound('No such chat');
  return { chatType: row.type, role: row.role };
}
