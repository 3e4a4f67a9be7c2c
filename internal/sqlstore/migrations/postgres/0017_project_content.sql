-- Project content (issue 12, R9 R10 R11 R12; DESIGN §8). Files are
-- manifests of sealed, content-addressed chunks. The chunks themselves live
-- in the content store (a folder in embedded mode, content_blobs in the
-- database otherwise); content_chunks lists what the store holds per project
-- and when a chunk was last stored or reused, and chunk_refs which file or
-- version uses it, so the collector removes only chunks that nothing uses
-- and that no upload has touched for a while. A path is found by its
-- HMAC under the project's address key (path_key); the path itself, the
-- manifest, a version's message and its tree are sealed under the project
-- key. Chunk addresses are HMACs too: they reveal nothing of the content.
CREATE TABLE content_chunks (
    project_id TEXT NOT NULL,
    address    BYTEA NOT NULL,
    size       BIGINT NOT NULL,
    touched_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, address)
);
CREATE INDEX content_chunks_touched ON content_chunks (touched_at);

CREATE TABLE content_blobs (
    project_id TEXT NOT NULL,
    address    BYTEA NOT NULL,
    data       BYTEA NOT NULL,
    PRIMARY KEY (project_id, address)
);

CREATE TABLE project_files (
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    path_key    BYTEA NOT NULL,
    path        BYTEA NOT NULL,
    size        BIGINT NOT NULL,
    etag        TEXT NOT NULL,
    manifest    BYTEA NOT NULL,
    modified_at BIGINT NOT NULL,
    modified_by TEXT NOT NULL,
    PRIMARY KEY (project_id, path_key)
);

CREATE TABLE project_versions (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    number     BIGINT NOT NULL,
    author     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    message    BYTEA NOT NULL,
    tree       BYTEA NOT NULL,
    files      BIGINT NOT NULL,
    restored_from BIGINT,
    PRIMARY KEY (project_id, number)
);

CREATE TABLE chunk_refs (
    project_id TEXT NOT NULL,
    address    BYTEA NOT NULL,
    holder     TEXT NOT NULL,
    PRIMARY KEY (project_id, address, holder)
);
CREATE INDEX chunk_refs_holder ON chunk_refs (project_id, holder);

-- Uploads in progress and chunk collections in progress, per project: the
-- collector does not start while an upload of the project runs, and an upload
-- waits while the collector works on its project, so a chunk an upload found
-- is never collected before the upload's file refers to it. Both are
-- claimed under the organisation's chain lock; stale rows (a crash) expire.
CREATE TABLE content_uploads (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    started_at BIGINT NOT NULL
);
CREATE INDEX content_uploads_project ON content_uploads (project_id);

CREATE TABLE content_collections (
    project_id TEXT PRIMARY KEY,
    until      BIGINT NOT NULL
);

-- A purged project's key is destroyed after the purge commits, like a
-- deleted person's (crypto-shredding).
ALTER TABLE key_shreds ADD COLUMN project_id TEXT;
