-- Support access by the customer's consent (issue 13, R22). A manager (for
-- the organisation) or a project's owner (for that project) grants support
-- view or edit for at most 14 days, with a reason sealed under the
-- organisation's key; support may ask first (support_requests). A support
-- session is a token (only its SHA-256 kept) on one grant: it ends with
-- the grant, revoked or expired, at the next request on any node, since
-- every request reads the grant. Every request made through a session is
-- a use: in the organisation's chain (support.access) and here, for the
-- managers' support page. support_approvals is the policy's four eyes.
ALTER TABLE orgs ADD COLUMN support_approvals INTEGER NOT NULL DEFAULT 1;

CREATE TABLE support_requests (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    operator_id TEXT NOT NULL,
    scope       TEXT NOT NULL,
    project_id  TEXT,
    access      TEXT NOT NULL,
    reason      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    status      TEXT NOT NULL,
    decided_by  TEXT NOT NULL DEFAULT '',
    decided_at  INTEGER,
    grant_id    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX support_requests_org ON support_requests (org_id, id);

CREATE TABLE support_grants (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    project_id  TEXT,
    access      TEXT NOT NULL,
    reason      BLOB NOT NULL,
    granted_by  TEXT NOT NULL,
    approved_by TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    active      INTEGER NOT NULL,
    revoked_at  INTEGER,
    revoked_by  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX support_grants_org ON support_grants (org_id, id);

CREATE TABLE support_sessions (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    grant_id     TEXT NOT NULL REFERENCES support_grants (id) ON DELETE CASCADE,
    operator_id  TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX support_sessions_org ON support_sessions (org_id, expires_at);

CREATE TABLE support_uses (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    grant_id    TEXT NOT NULL REFERENCES support_grants (id) ON DELETE CASCADE,
    operator_id TEXT NOT NULL,
    at          INTEGER NOT NULL,
    method      TEXT NOT NULL,
    route       TEXT NOT NULL,
    object      TEXT NOT NULL
);
CREATE INDEX support_uses_grant ON support_uses (grant_id, at);
