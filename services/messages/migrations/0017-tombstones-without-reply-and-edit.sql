-- A deleted message shows neither what it replied to nor when it was edited (docs/api.md), and
-- a rebuild, which finds neither in the stream any more, writes both as NULL: tombstones written
-- live before the projection cleared them (d49190d) are brought in line, so that the API and a
-- rebuild agree for them too. Only deleted rows are touched (a partial index, 0015, finds them).
UPDATE messages.messages SET reply_to = NULL, edited_at = NULL
WHERE deleted_at IS NOT NULL AND (reply_to IS NOT NULL OR edited_at IS NOT NULL);
