-- kluis schema, PostgreSQL. Timestamps are Unix microseconds (UTC); ids are UUIDv7 text.
-- Every organisation-owned table carries org_id and goes with the organisation (R1, R36).

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE operators (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT
);

CREATE TABLE operator_sessions (
    id           TEXT PRIMARY KEY,
    operator_id  TEXT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    token_hash   BYTEA NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);

CREATE TABLE orgs (
    id                     TEXT PRIMARY KEY,
    slug                   TEXT NOT NULL UNIQUE,
    name                   TEXT NOT NULL,
    language               TEXT NOT NULL,
    created_at             BIGINT NOT NULL,
    password_min_length    BIGINT NOT NULL,
    password_require_digit BOOLEAN NOT NULL,
    password_require_upper BOOLEAN NOT NULL,
    session_idle_minutes   BIGINT NOT NULL,
    session_max_hours      BIGINT NOT NULL
);

CREATE TABLE users (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email              TEXT NOT NULL,
    email_lookup       TEXT NOT NULL,
    name               TEXT NOT NULL,
    phone              TEXT NOT NULL,
    maintenance_emails BOOLEAN NOT NULL,
    role               TEXT NOT NULL,
    status             TEXT NOT NULL,
    password_hash      TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    last_login_at      BIGINT,
    UNIQUE (org_id, email_lookup)
);

CREATE TABLE invitations (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX invitations_user ON invitations (user_id);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   BYTEA NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_org ON sessions (org_id);

-- The audit chains (DESIGN §3). Audit rows outlive the organisation they
-- describe (no foreign key): the chain must keep verifying after a deletion.
CREATE TABLE audit_heads (
    chain TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  BYTEA NOT NULL
);

CREATE TABLE audit_events (
    chain     TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    id        TEXT NOT NULL,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    details   BYTEA NOT NULL,
    client    BYTEA NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash      BYTEA NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX audit_events_at ON audit_events (chain, at);

CREATE TABLE audit_checkpoints (
    chain     TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    hash      BYTEA NOT NULL,
    at        BIGINT NOT NULL,
    signature BYTEA NOT NULL,
    PRIMARY KEY (chain, seq)
);

INSERT INTO audit_heads (chain, seq, hash) VALUES ('platform', 0, decode(repeat('00', 32), 'hex'));

-- Outgoing mail waits here until delivered, then the row is deleted. An
-- invitation's mail holds its link: it goes with the invitation (accepted,
-- re-sent, revoked, expired, user deleted), never outliving it.
CREATE TABLE mail_queue (
    id              TEXT PRIMARY KEY,
    org_id          TEXT REFERENCES orgs (id) ON DELETE CASCADE,
    user_id         TEXT REFERENCES users (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    sender          TEXT NOT NULL,
    recipients      TEXT NOT NULL,
    message         BYTEA NOT NULL
);
CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at);
CREATE INDEX mail_queue_user ON mail_queue (user_id);
