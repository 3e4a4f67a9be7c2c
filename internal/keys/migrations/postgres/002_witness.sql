-- The audit witness of scale-out mode (DESIGN §3): a copy of every signed
-- audit checkpoint, outside the data database and seen by every node.
-- Append-only by use; rows are never updated or deleted.
CREATE TABLE audit_witness (
	id        BIGSERIAL PRIMARY KEY,
	chain     TEXT   NOT NULL,
	seq       BIGINT NOT NULL,
	hash      BYTEA  NOT NULL,
	at        BIGINT NOT NULL,
	signature BYTEA  NOT NULL
);
