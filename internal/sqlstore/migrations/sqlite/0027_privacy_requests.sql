-- The register of data-subject requests (issue 15, R34): one row per
-- request of a person to exercise a GDPR right. subject_id and handler_id
-- name people of the organisation but are no foreign keys: the register is
-- the organisation's evidence that it answered (GDPR Art. 5(2)) and outlives
-- the person's erasure, keeping only these pseudonymous ids. The outcome is
-- sealed under the organisation key; reminder is the last reminder sent to
-- the managers (0 none, 1 a week before due, 2 a day before, 3 overdue);
-- extended is by how many months the due date was extended (GDPR Art. 12(3)).
CREATE TABLE privacy_requests (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    type        TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    status      TEXT NOT NULL,
    handler_id  TEXT,
    outcome     BLOB,
    updated_at  INTEGER NOT NULL,
    reminder    INTEGER NOT NULL DEFAULT 0,
    extended    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX privacy_requests_org ON privacy_requests (org_id, received_at);
CREATE INDEX privacy_requests_due ON privacy_requests (status, due_at);

-- What an organisation's privacy page says beyond the rights: the
-- controller's contact (published information, GDPR Art. 13(1)) and the
-- supervisory authority to complain to. No row: the defaults.
CREATE TABLE privacy_settings (
    org_id         TEXT PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    contact        TEXT NOT NULL,
    authority_name TEXT NOT NULL,
    authority_url  TEXT NOT NULL,
    updated_at     INTEGER NOT NULL
);
