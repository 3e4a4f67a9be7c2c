-- Backups and restore drills (R28 R30 R31 R32 R42). A backup's objects live
-- on its targets, encrypted with age; these rows are the record: when each
-- backup ran, where it went and whether each target got it, what it holds
-- per organisation (counts only, R31), when it was last verified, and every
-- restore drill with its outcome and duration.
CREATE TABLE backups (
    id              TEXT PRIMARY KEY,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    kind            TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,
    size            INTEGER NOT NULL DEFAULT 0,
    verified_at     INTEGER,
    verify_outcome  TEXT NOT NULL DEFAULT '',
    removed_at      INTEGER
);
CREATE INDEX backups_started ON backups (started_at);

CREATE TABLE backup_copies (
    backup_id     TEXT NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    target        TEXT NOT NULL,
    location      TEXT NOT NULL,
    status        TEXT NOT NULL,
    error         TEXT NOT NULL DEFAULT '',
    bytes         INTEGER NOT NULL DEFAULT 0,
    chunks_new    INTEGER NOT NULL DEFAULT 0,
    chunks_reused INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (backup_id, target)
);

CREATE TABLE backup_holdings (
    backup_id    TEXT NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    org_id       TEXT NOT NULL,
    users        INTEGER NOT NULL,
    projects     INTEGER NOT NULL,
    files        INTEGER NOT NULL,
    versions     INTEGER NOT NULL,
    chunks       INTEGER NOT NULL,
    audit_events INTEGER NOT NULL,
    PRIMARY KEY (backup_id, org_id)
);
CREATE INDEX backup_holdings_org ON backup_holdings (org_id);

CREATE TABLE backup_drills (
    id          TEXT PRIMARY KEY,
    backup_id   TEXT NOT NULL,
    at          INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX backup_drills_at ON backup_drills (at);
