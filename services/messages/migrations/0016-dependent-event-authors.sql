-- Who chose a reaction (added or removed) or a vote (cast or withdrawn), for an erasure with a
-- purge: a person who reacted and took it back (or voted and withdrew), then left the chat, has no
-- row naming them in it any more, and the erasure did not visit the chat, so those events stayed
-- on its subject. NULL for a poll's close and for rows from before this column (a rebuild of the
-- messages projection fills them; until then such a chat is missed as before).
ALTER TABLE messages.dependent_events ADD COLUMN user_id uuid;
CREATE INDEX dependent_events_user ON messages.dependent_events (user_id) WHERE user_id IS NOT NULL;
