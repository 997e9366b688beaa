import type { Queryable } from '@parley/pg';
import { messageColumns, type MessageRow } from '../messages/queries.js';

export interface SearchRow extends MessageRow {
  rank: number;
  snippet: string;
}

/**
 * Marks around matches in ts_headline output, turned into <mark> by routes.ts. A body may contain
 * these control characters too (input.ts refuses only U+0000 and lone surrogates), so the query
 * turns the body's own into spaces before the headline: otherwise a sender could forge a highlight
 * (or a stray </mark>) in another member's snippet.
 */
export const MARK_START = '\u0001';
export const MARK_END = '\u0002';

/**
 * Full-text search over the caller's chats only (the join on chat_members is the isolation rule),
 * best match first, keyset-paginated on (rank, id). The russian configuration stems Cyrillic words
 * with the Russian stemmer and Latin ones with the English stemmer, so one configuration serves
 * both languages, in the index (migration 0012) and in the query alike.
 */
export async function searchMessages(
  db: Queryable,
  userId: string,
  q: string,
  chatId: string | null,
  limit: number,
  after: { rank: number; id: string } | null,
): Promise<SearchRow[]> {
  const { rows } = await db.query<SearchRow>(
    `WITH query AS (SELECT websearch_to_tsquery('russian', $2) AS tsq),
     hits AS (
       SELECT ${messageColumns('m')}, ts_rank(m.search, query.tsq)::float8 AS rank, m.body AS full_body, query.tsq
         FROM messages.messages m
         JOIN messages.chat_members cm ON cm.chat_id = m.chat_id AND cm.user_id = $1
         CROSS JOIN query
        WHERE m.search @@ query.tsq AND m.deleted_at IS NULL AND ($3::uuid IS NULL OR m.chat_id = $3::uuid)
     )
     SELECT id, chat_id, seq, sender_id, body, reply_to, created_at, edited_at, deleted_at, poll_id, rank,
            ts_headline('russian', translate(full_body, $6 || $7, '  '), tsq, 'StartSel=' || $6 || ', StopSel=' || $7 || ', MaxWords=24, MinWords=8, MaxFragments=1') AS snippet
       FROM hits
      WHERE $4::float8 IS NULL OR (rank, id) < ($4::float8, $5::uuid)
      ORDER BY rank DESC, id DESC
      LIMIT ${Number(limit)}`,
    [userId, q, chatId, after?.rank ?? null, after?.id ?? null, MARK_START, MARK_END],
  );
  return rows;
}
