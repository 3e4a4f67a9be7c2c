-- Key life-cycle events (R28: a log of key use), written in the transaction
-- of the change they record, and deleted once the data side has appended
-- them to its audit chains: the table holds only the events not yet there
-- (after a crash, until the next start). seq is the order in which the
-- changes committed; id (a UUIDv7) is what the data side records to append
-- each event once. Ids, versions, fingerprints and the actor's audit name
-- only: never key material. Times are Unix microseconds.
CREATE TABLE key_events (
	seq                       BIGSERIAL PRIMARY KEY,
	id                        TEXT    NOT NULL UNIQUE,
	action                    TEXT    NOT NULL CHECK (action IN ('key.created', 'key.rotated', 'key.retired', 'key.destroyed', 'key.root-rotated')),
	kind                      TEXT    NOT NULL CHECK (kind IN ('org', 'index', 'user', 'project', 'platform', '')),
	org_id                    TEXT    NOT NULL,
	owner_id                  TEXT    NOT NULL,
	key_id                    TEXT    NOT NULL,
	version                   INTEGER NOT NULL,
	rewrapped                 INTEGER NOT NULL,
	root_fingerprint          TEXT    NOT NULL,
	previous_root_fingerprint TEXT    NOT NULL,
	at                        BIGINT  NOT NULL,
	actor                     TEXT    NOT NULL CHECK (actor <> '')
);
