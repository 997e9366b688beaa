-- "Start following this chat" notices for the gateways of users added to a chat (created with
-- them, or added later), queued by the chats projection in the transaction that adds them and
-- published by the inbox reactor (src/reactors/inbox.ts): a crash between the append and the
-- command's own notice can no longer leave a new member without live events until they reconnect.
CREATE TABLE messages.inbox_notices (
  stream_seq  bigint PRIMARY KEY,
  chat_id     uuid NOT NULL,
  seq         integer NOT NULL,
  user_ids    uuid[] NOT NULL,
  queued_at   timestamptz NOT NULL
);
