-- Licences and project activity (issue 13, R13). One licence per
-- organisation, set by the operator; a NULL limit is no limit. An activity
-- period runs from a project's start until it is stopped, the project goes
-- to the trash, or the licence's timeout passes (ended_at is then written
-- as started_at + the timeout, and until then decided when read). The
-- person who started it goes with their erasure (user_id becomes NULL), the
-- period with its project.
CREATE TABLE licences (
    org_id              TEXT PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    max_users           INTEGER,
    max_projects        INTEGER,
    max_active_projects INTEGER,
    max_storage_bytes   INTEGER,
    ends_at             INTEGER,
    activity_timeout    INTEGER NOT NULL DEFAULT 480,
    updated_at          INTEGER NOT NULL
);

CREATE TABLE activity_periods (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    TEXT REFERENCES users (id) ON DELETE SET NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    ended      TEXT
);
CREATE INDEX activity_periods_org ON activity_periods (org_id, started_at);
CREATE INDEX activity_periods_open ON activity_periods (project_id) WHERE ended_at IS NULL;
