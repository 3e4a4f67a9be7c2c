-- The key store (DESIGN §4). It lives apart from the data database; a copy of
-- the data holds no key. Times are Unix microseconds.

-- One row: the root key this store is wrapped under.
CREATE TABLE key_store (
	id               INTEGER PRIMARY KEY CHECK (id = 1),
	root_fingerprint TEXT    NOT NULL,
	root_generation  INTEGER NOT NULL CHECK (root_generation > 0),
	created_at       BIGINT  NOT NULL,
	root_rotated_at  BIGINT  NOT NULL
);

-- One row per version of a key. A destroyed version keeps its metadata and
-- loses its wrapped bytes (on PostgreSQL they linger in dead tuples until
-- vacuumed: see the threat model of package keys).
CREATE TABLE keys (
	id                 TEXT    NOT NULL,
	version            INTEGER NOT NULL CHECK (version > 0),
	kind               TEXT    NOT NULL CHECK (kind IN ('org', 'index', 'user', 'project', 'platform')),
	org_id             TEXT    NOT NULL,
	owner_id           TEXT    NOT NULL,
	state              TEXT    NOT NULL CHECK (state IN ('active', 'retired', 'destroyed')),
	wrapped            BYTEA,
	wrapped_by_id      TEXT    NOT NULL,
	wrapped_by_version INTEGER NOT NULL,
	created_at         BIGINT  NOT NULL,
	retired_at         BIGINT,
	destroyed_at       BIGINT,
	PRIMARY KEY (id, version),
	CHECK ((state = 'destroyed') = (wrapped IS NULL))
);

CREATE UNIQUE INDEX keys_one_active ON keys (kind, org_id, owner_id) WHERE state = 'active';
CREATE INDEX keys_by_owner ON keys (kind, org_id, owner_id, version);
CREATE INDEX keys_by_org ON keys (org_id, kind);
CREATE INDEX keys_by_parent ON keys (wrapped_by_id, wrapped_by_version);
