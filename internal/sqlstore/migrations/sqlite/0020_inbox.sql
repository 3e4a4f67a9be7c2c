-- The in-app inbox (issue 13, R5, R8): notices for one person of an
-- organisation, such as "a person was erased on the organisation's request"
-- or "someone was made a manager". Title and body are sealed under the
-- recipient's user key (they may name people), so erasing the recipient
-- makes them unreadable like the rest of their data; the row goes with them.
CREATE TABLE notices (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    read_at    INTEGER,
    title      BLOB NOT NULL,
    body       BLOB NOT NULL
);
CREATE INDEX notices_user ON notices (org_id, user_id, created_at);

-- Few administrators (R8): an organisation may cap its number of managers;
-- NULL is no cap.
ALTER TABLE orgs ADD COLUMN max_managers INTEGER;
