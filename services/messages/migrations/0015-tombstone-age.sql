-- Retention: a deleted message's tombstone row (seq, sender, time) expires like the message, but
-- its MessageSent left the stream with the deletion, so the pass asks for tombstones older than
-- its cutoff (messages.retentionPreview). Partial: only tombstones are in it, so sends do not pay
-- for it, and the pass's question reads a few entries instead of the whole table.
CREATE INDEX messages_tombstones_age ON messages.messages (created_at) WHERE deleted_at IS NOT NULL;
