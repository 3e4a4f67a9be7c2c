-- Backups and restore drills (R28 R30 R31 R32 R42). A backup's objects live
-- on its targets, encrypted with age; these rows are the record: when each
-- backup ran, where it went and whether each target got it, what it holds
-- per organisation (counts only, R31), when it was last verified, and every
-- restore drill with its outcome and duration.
CREATE TABLE backups (
    id              TEXT PRIMARY KEY,
    started_at      BIGINT NOT NULL,
    finished_at     BIGINT,
    kind            TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,
    size            BIGINT NOT NULL DEFAULT 0,
    verified_at     BIGINT,
    verify_outcome  TEXT NOT NULL DEFAULT '',
    removed_at      BIGINT
);
CREATE INDEX backups_started ON backups (started_at);

CREATE TABLE backup_copies (
    backup_id     TEXT NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    target        TEXT NOT NULL,
    location      TEXT NOT NULL,
    status        TEXT NOT NULL,
    error         TEXT NOT NULL DEFAULT '',
    bytes         BIGINT NOT NULL DEFAULT 0,
    chunks_new    BIGINT NOT NULL DEFAULT 0,
    chunks_reused BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (backup_id, target)
);

CREATE TABLE backup_holdings (
    backup_id    TEXT NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    org_id       TEXT NOT NULL,
    users        BIGINT NOT NULL,
    projects     BIGINT NOT NULL,
    files        BIGINT NOT NULL,
    versions     BIGINT NOT NULL,
    chunks       BIGINT NOT NULL,
    audit_events BIGINT NOT NULL,
    PRIMARY KEY (backup_id, org_id)
);
CREATE INDEX backup_holdings_org ON backup_holdings (org_id);

CREATE TABLE backup_drills (
    id          TEXT PRIMARY KEY,
    backup_id   TEXT NOT NULL,
    at          BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX backup_drills_at ON backup_drills (at);
