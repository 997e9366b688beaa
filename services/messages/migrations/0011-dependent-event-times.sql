-- Issue 18: when a retention pass expires a message, the events that refer to it (reactions,
-- votes, a poll's close) and are older than the pass's cutoff go with the pass's purge of the
-- whole stream below the cutoff; only the newer ones need deleting one by one. The event's own time
-- tells which (it survives a restore, unlike a stream sequence). Rows from before this column are
-- NULL and are deleted one by one, as before.
ALTER TABLE messages.dependent_events ADD COLUMN occurred_at timestamptz;
