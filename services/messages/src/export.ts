import type { RpcMethods } from '@parley/contracts';
import type { Queryable } from '@parley/pg';

type ExportData = RpcMethods['messages.export']['res'];

/** Everything the messages service holds that is about one user or written by them. */
export async function exportUserData(db: Queryable, userId: string): Promise<ExportData> {
  const [chats, messages, reactions, votes, reads, attachments] = await Promise.all([
    db.query<{ id: string; type: string; title: string | null; role: string }>(
      'SELECT c.id, c.type, c.title, m.role FROM messages.chats c JOIN messages.chat_members m ON m.chat_id = c.id WHERE m.user_id = $1 ORDER BY c.created_at',
      [userId],
    ),
    db.query<{ id: string; chat_id: string; seq: number; body: string; reply_to: string | null; created_at: Date; edited_at: Date | null; deleted_at: Date | null }>(
      'SELECT id, chat_id, seq, body, reply_to, created_at, edited_at, deleted_at FROM messages.messages WHERE sender_id = $1 ORDER BY created_at',
      [userId],
    ),
    db.query<{ message_id: string; emoji: string }>('SELECT message_id, emoji FROM messages.reactions WHERE user_id = $1', [userId]),
    db.query<{ poll_id: string; option_id: string }>('SELECT poll_id, option_id FROM messages.poll_votes WHERE user_id = $1', [userId]),
    db.query<{ chat_id: string; seq: number }>('SELECT chat_id, seq FROM messages.read_positions WHERE user_id = $1', [userId]),
    db.query<{ id: string; name: string; size: string; mime: string; uploaded_at: Date }>(
      'SELECT id, name, size, mime, uploaded_at FROM messages.attachments WHERE uploader_id = $1 ORDER BY uploaded_at',
      [userId],
    ),
  ]);
  return {
    chats: chats.rows,
    messages: messages.rows.map((m) => ({
      id: m.id,
      chatId: m.chat_id,
      seq: m.seq,
      body: m.body,
      replyTo: m.reply_to,
      createdAt: m.created_at.toISOString(),
      editedAt: m.edited_at?.toISOString() ?? null,
      deletedAt: m.deleted_at?.toISOString() ?? null,
    })),
    reactions: reactions.rows.map((r) => ({ messageId: r.message_id, emoji: r.emoji })),
    pollVotes: votes.rows.map((v) => ({ pollId: v.poll_id, optionId: v.option_id })),
    readPositions: reads.rows.map((r) => ({ chatId: r.chat_id, seq: r.seq })),
    // bigint arrives as a string from pg; sizes stay far below 2^53 (25 MiB cap).
    attachments: attachments.rows.map((a) => ({ id: a.id, name: a.name, size: Number(a.size), mime: a.mime, uploadedAt: a.uploaded_at.toISOString() })),
  };
}
