import { MAX_RPC_BATCH, type MessagesRetentionCounts, type RpcMethods } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Pool } from '@parley/pg';
import type { AttachmentStore } from '@parley/storage';

/**
 * The messages service's part of a retention pass that is not an event: counting what an expiry
 * would remove (the pass's dry run and report) and sweeping files that lost their row. Deleting the
 * rows themselves is the projection's job (MessagesExpired, ReadPositionsExpired), so that a rebuild
 * and a live system agree.
 */
export async function retentionPreview(pool: Pool, req: RpcMethods['messages.retentionPreview']['req']): Promise<RpcMethods['messages.retentionPreview']['res']> {
  const { chats } = req;
  const counts: MessagesRetentionCounts = { messages: 0, reactions: 0, polls: 0, pollVotes: 0, attachments: 0, readReceipts: 0 };
  let heads: { chatId: string; seq: number }[] = [];
  let tombstones: { chatId: string; seq: number }[] | undefined;
  if (chats.length > 0 && req.heads) {
    // The projection's last seq counts events the stream may no longer hold (see the RPC's schema).
    const { rows: last } = await pool.query<{ id: string; last_seq: number }>('SELECT id::text, last_seq FROM messages.chats WHERE id = ANY($1::uuid[])', [chats.map((c) => c.chatId)]);
    heads = last.map((r) => ({ chatId: r.id, seq: Number(r.last_seq) }));
  }
  if (chats.length > 0) {
    const { rows } = await pool.query<Omit<MessagesRetentionCounts, 'readReceipts'>>(
      `WITH expired AS (
         SELECT m.id FROM unnest($1::uuid[], $2::int[]) AS c(chat_id, up_to)
           JOIN messages.messages m ON m.chat_id = c.chat_id AND m.seq <= c.up_to)
       SELECT (SELECT count(*) FROM expired)::int AS messages,
              (SELECT count(*) FROM messages.reactions r JOIN expired e ON r.message_id = e.id)::int AS reactions,
              (SELECT count(*) FROM messages.polls p JOIN expired e ON p.message_id = e.id)::int AS polls,
              (SELECT count(*) FROM messages.poll_votes v JOIN messages.polls p ON v.poll_id = p.id JOIN expired e ON p.message_id = e.id)::int AS "pollVotes",
              (SELECT count(DISTINCT ma.attachment_id) FROM messages.message_attachments ma JOIN expired e ON ma.message_id = e.id)::int AS attachments`,
      [chats.map((c) => c.chatId), chats.map((c) => c.upToSeq)],
    );
    Object.assign(counts, rows[0]);
  }
  if (req.tombstones) {
    // Deleted messages the pass's scan cannot see (their MessageSent left the stream with the
    // deletion); the partial index messages_tombstones_age (migration 0015) finds them.
    // Ordered by the uuid itself (not its text), as the page's `chat_id > afterChatId` compares.
    // Not one with a fresh message below it: a seq follows the stream, a time the writer's clock,
    // and a send retried after a conflict (or appended again by the seq repair) keeps its first
    // time, so an older message can hold a higher seq than a fresh one, and an expiry up to it
    // would take the fresh one (expireMessages goes by seq).
    const { rows } = await pool.query<{ id: string; seq: number }>(
      `SELECT t.chat_id::text AS id, max(t.seq) AS seq FROM messages.messages t
        WHERE t.deleted_at IS NOT NULL AND t.created_at < $1 AND ($2::uuid IS NULL OR t.chat_id > $2::uuid)
          AND NOT EXISTS (SELECT 1 FROM messages.messages f WHERE f.chat_id = t.chat_id AND f.seq < t.seq AND f.created_at >= $1)
        GROUP BY t.chat_id ORDER BY t.chat_id LIMIT $3`,
      [req.tombstones.cutoff, req.tombstones.afterChatId, MAX_RPC_BATCH],
    );
    tombstones = rows.map((r) => ({ chatId: r.id, seq: Number(r.seq) }));
  }
  if (req.receiptsCutoff !== null) {
    const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM messages.read_positions WHERE updated_at < $1', [req.receiptsCutoff]);
    counts.readReceipts = rows[0]?.n ?? 0;
  }
  return { ...counts, ...(req.heads ? { heads } : {}), ...(tombstones ? { tombstones } : {}) };
}

/**
 * Deletes stored files that no attachment row refers to and that are older than `olderThan` (so an
 * upload whose row is still being projected is safe). Files are removed after the transaction that
 * deleted their row commits; a crash in between leaves them here, and the next pass converges.
 */
export async function sweepOrphanFiles(pool: Pool, store: AttachmentStore, olderThan: Date, log: Logger): Promise<number> {
  let batch: string[] = [];
  let deleted = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const { rows } = await pool.query<{ id: string }>('SELECT id::text FROM messages.attachments WHERE id = ANY($1::uuid[])', [batch]);
    const known = new Set(rows.map((r) => r.id));
    for (const id of batch) {
      if (known.has(id)) continue;
      await store.delete(id);
      deleted++;
    }
    batch = [];
  };
  for await (const file of store.list()) {
    if (file.modifiedAt >= olderThan) continue;
    batch.push(file.id);
    if (batch.length >= 500) await flush();
  }
  await flush();
  if (deleted > 0) log.info({ deleted }, 'orphan attachment files deleted');
  return deleted;
}
