-- Content-address keys (DESIGN §8): one HMAC-SHA-256 key per project, made
-- and destroyed with the project key, wrapped by the organisation key.
-- SQLite cannot change a CHECK constraint, so both tables that name the
-- kinds are rebuilt, in the migration's transaction. The old pages are
-- overwritten as they are freed (secure_delete).

CREATE TABLE keys_new (
	id                 TEXT    NOT NULL,
	version            INTEGER NOT NULL CHECK (version > 0),
	kind               TEXT    NOT NULL CHECK (kind IN ('org', 'index', 'user', 'project', 'address', 'platform')),
	org_id             TEXT    NOT NULL,
	owner_id           TEXT    NOT NULL,
	state              TEXT    NOT NULL CHECK (state IN ('active', 'retired', 'destroyed')),
	wrapped            BLOB,
	wrapped_by_id      TEXT    NOT NULL,
	wrapped_by_version INTEGER NOT NULL,
	created_at         INTEGER NOT NULL,
	retired_at         INTEGER,
	destroyed_at       INTEGER,
	PRIMARY KEY (id, version),
	CHECK ((state = 'destroyed') = (wrapped IS NULL))
);
INSERT INTO keys_new (id, version, kind, org_id, owner_id, state, wrapped, wrapped_by_id, wrapped_by_version, created_at, retired_at, destroyed_at)
	SELECT id, version, kind, org_id, owner_id, state, wrapped, wrapped_by_id, wrapped_by_version, created_at, retired_at, destroyed_at FROM keys;
DROP TABLE keys;
ALTER TABLE keys_new RENAME TO keys;
CREATE UNIQUE INDEX keys_one_active ON keys (kind, org_id, owner_id) WHERE state = 'active';
CREATE INDEX keys_by_owner ON keys (kind, org_id, owner_id, version);
CREATE INDEX keys_by_org ON keys (org_id, kind);
CREATE INDEX keys_by_parent ON keys (wrapped_by_id, wrapped_by_version);

CREATE TABLE key_events_new (
	seq                       INTEGER PRIMARY KEY AUTOINCREMENT,
	id                        TEXT    NOT NULL UNIQUE,
	action                    TEXT    NOT NULL CHECK (action IN ('key.created', 'key.rotated', 'key.retired', 'key.destroyed', 'key.root-rotated')),
	kind                      TEXT    NOT NULL CHECK (kind IN ('org', 'index', 'user', 'project', 'address', 'platform', '')),
	org_id                    TEXT    NOT NULL,
	owner_id                  TEXT    NOT NULL,
	key_id                    TEXT    NOT NULL,
	version                   INTEGER NOT NULL,
	rewrapped                 INTEGER NOT NULL,
	root_fingerprint          TEXT    NOT NULL,
	previous_root_fingerprint TEXT    NOT NULL,
	at                        INTEGER NOT NULL,
	actor                     TEXT    NOT NULL CHECK (actor <> '')
);
INSERT INTO key_events_new (seq, id, action, kind, org_id, owner_id, key_id, version, rewrapped, root_fingerprint, previous_root_fingerprint, at, actor)
	SELECT seq, id, action, kind, org_id, owner_id, key_id, version, rewrapped, root_fingerprint, previous_root_fingerprint, at, actor FROM key_events;
-- seq keeps counting from where it was, even past events already deleted.
DELETE FROM sqlite_sequence WHERE name = 'key_events_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'key_events_new', seq FROM sqlite_sequence WHERE name = 'key_events';
DROP TABLE key_events;
ALTER TABLE key_events_new RENAME TO key_events;
