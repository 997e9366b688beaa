-- Attachments (issue 4): metadata projected from AttachmentUploaded; the bytes live in the
-- attachment store (ATTACHMENTS_DIR) under the same id.
CREATE TABLE messages.attachments (
  id           uuid PRIMARY KEY,
  uploader_id  uuid NOT NULL,
  name         text NOT NULL,
  size         bigint NOT NULL,
  mime         text NOT NULL,
  uploaded_at  timestamptz NOT NULL,
  stream_seq   bigint NOT NULL
);
CREATE INDEX attachments_age ON messages.attachments (uploaded_at);

CREATE TABLE messages.message_attachments (
  message_id     uuid NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
  attachment_id  uuid NOT NULL,
  chat_id        uuid NOT NULL,
  position       integer NOT NULL,
  PRIMARY KEY (message_id, attachment_id)
);
CREATE INDEX message_attachments_attachment ON messages.message_attachments (attachment_id);
