-- Account security policy (R17, R18): whether a second factor is asked, and
-- how many failed sign-ins in a row lock an identifier for unknown browsers.
ALTER TABLE orgs ADD COLUMN mfa TEXT NOT NULL DEFAULT 'optional';
ALTER TABLE orgs ADD COLUMN lockout_threshold INTEGER NOT NULL DEFAULT 5;

-- Failed sign-ins per identifier (DESIGN §6): scope is an organisation id or
-- 'operator'; ident is a keyed hash of the e-mail address (or of a device
-- cookie), kept whether or not such an account exists, so a lock reveals no
-- account and no row holds an address in clear. failures counts failures in
-- a row; locks counts the locks of this series (each one twice as long).
CREATE TABLE login_failures (
    scope        TEXT NOT NULL,
    ident        BYTEA NOT NULL,
    failures     INTEGER NOT NULL,
    locks        INTEGER NOT NULL,
    locked_until BIGINT,
    mailed_at    BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, ident)
);
CREATE INDEX login_failures_updated ON login_failures (updated_at);

-- Failures per client address over every unauthenticated endpoint: a
-- sliding window (the current and the previous one, weighted) and a block
-- that doubles for repeat offenders. addr_key is a keyed hash of the address
-- (an IPv6 address by its /64); ref is its short public reference for the
-- operator's commands. permanent blocks only the operator lifts.
CREATE TABLE address_failures (
    addr_key      BYTEA PRIMARY KEY,
    ref           TEXT NOT NULL UNIQUE,
    window_start  BIGINT NOT NULL,
    window_count  INTEGER NOT NULL,
    prev_count    INTEGER NOT NULL,
    blocks        INTEGER NOT NULL,
    blocked_until BIGINT,
    permanent     BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX address_failures_updated ON address_failures (updated_at);

-- Links that let the owner of a locked account lift the lock (single use,
-- one hour, stored as the SHA-256 of the token).
CREATE TABLE unlock_links (
    token_hash BYTEA PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX unlock_links_user ON unlock_links (user_id);

-- The organisation-wide failure rate (many identifiers, few successes): one
-- window per organisation and the time of the last alarm.
CREATE TABLE org_failure_rates (
    org_id       TEXT PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    window_start BIGINT NOT NULL,
    failures     INTEGER NOT NULL,
    successes    INTEGER NOT NULL,
    alarm_at     BIGINT
);

-- Scheduled jobs run under a lease (DESIGN §9): one row per job, the node
-- holding it, until when, and when it last completed.
CREATE TABLE job_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    last_run_at BIGINT
);

-- The security digest counts locks, blocks and alarms by action and time.
CREATE INDEX audit_events_action_at ON audit_events (action, at);

-- A challenge whose password step came from a browser with a valid device
-- entry: its second step is exempt from the address block as the password
-- step was (DESIGN §6).
ALTER TABLE login_challenges ADD COLUMN trusted BOOLEAN NOT NULL DEFAULT FALSE;
