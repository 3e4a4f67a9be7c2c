-- Key life-cycle events appended to the audit chains (issue 11 item 5, R28).
-- The key store records its events itself; the drain appends each to its
-- chain and notes its id here in the same transaction, and only then deletes
-- it from the key store. An id found here is not appended again, so a crash
-- between the two commits cannot record an event twice. Rows are kept: they
-- are small, one per key event, and keep a key store restored from a backup
-- from appending its old events again.
CREATE TABLE key_events_drained (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);
