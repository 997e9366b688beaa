-- Stream content to delete (a deleted message's original event and its edits), written in the
-- same transaction as the tombstone, drained by the stream-content reactor
-- (src/chats/stream-deleter.ts). A crash between the commit and the deletion leaves the rows here,
-- and the next drain deletes them: a deleted body never outlives its deletion in the stream.
CREATE TABLE messages.stream_deletions (
  stream_seq bigint PRIMARY KEY,
  queued_at  timestamptz NOT NULL DEFAULT now()
);
