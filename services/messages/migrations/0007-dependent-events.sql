-- The stream events that refer to a message without being it (reactions added and removed, votes,
-- a poll's close), kept by the chats projection so that when the message goes (deleted, expired or
-- erased) they leave the chats stream with it: a reaction or a vote on a message is personal data
-- that must not outlive the message. Edits are on the message's row (edit_stream_seqs).
CREATE TABLE messages.dependent_events (
  stream_seq  bigint PRIMARY KEY,
  message_id  uuid NOT NULL
);
CREATE INDEX dependent_events_message ON messages.dependent_events (message_id);
