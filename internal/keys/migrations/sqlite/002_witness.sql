-- The audit witness of scale-out mode (DESIGN §3): a copy of every signed
-- audit checkpoint, outside the data database and seen by every node.
-- Append-only by use; rows are never updated or deleted.
CREATE TABLE audit_witness (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	chain     TEXT    NOT NULL,
	seq       INTEGER NOT NULL,
	hash      BLOB    NOT NULL,
	at        INTEGER NOT NULL,
	signature BLOB    NOT NULL
);
