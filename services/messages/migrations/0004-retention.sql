-- Retention (issue 6): expired read positions are found by age. Messages expire by (chat_id, seq),
-- which the UNIQUE index already serves, and erasure by (chat_id, sender_id), which the clientMsgId
-- index serves, so no new index slows the message insert path.
CREATE INDEX read_positions_age ON messages.read_positions (updated_at);

-- Stream sequences of a message's edits: a deleted message's original and edited bodies are then
-- deleted from the chats stream too (the tombstone event stays), without scanning the chat.
ALTER TABLE messages.messages ADD COLUMN edit_stream_seqs bigint[] NOT NULL DEFAULT '{}';
