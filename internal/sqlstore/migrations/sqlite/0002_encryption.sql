-- Encryption at rest (issue 3, DESIGN §4, R28). Personal values are stored
-- as ciphertext ("v1:" format of internal/keys) under the key of the person
-- they describe; the e-mail address is found through a blind index (HMAC
-- under the organisation's index key). The key store lives apart from this
-- database. Tables holding plaintext personal data are rebuilt: kluis refuses
-- this migration on a database that already holds users (a pre-release
-- schema); see docs/OPERATIONS.md, "Upgrades".

DROP TABLE mail_queue;
DROP TABLE sessions;
DROP TABLE invitations;
DROP TABLE users;

CREATE TABLE users (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email_index        BLOB NOT NULL,
    email              BLOB NOT NULL,
    name               BLOB NOT NULL,
    phone              BLOB NOT NULL,
    maintenance_emails BOOLEAN NOT NULL,
    role               TEXT NOT NULL,
    status             TEXT NOT NULL,
    password_hash      TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    last_login_at      INTEGER,
    UNIQUE (org_id, email_index)
);

CREATE TABLE invitations (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX invitations_user ON invitations (user_id);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_org ON sessions (org_id);

-- The envelope (sender, recipients, message) is one ciphertext under the
-- recipient's user key (the organisation key, or the platform key, for mail
-- to no user of an organisation), so deleting the user makes a copy of a
-- queued message unreadable too.
CREATE TABLE mail_queue (
    id              TEXT PRIMARY KEY,
    org_id          TEXT REFERENCES orgs (id) ON DELETE CASCADE,
    user_id         TEXT REFERENCES users (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    envelope        BLOB NOT NULL
);
CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at);
CREATE INDEX mail_queue_user ON mail_queue (user_id);

-- Keys to destroy once the deletion that needs it has committed: written in
-- the deleting transaction, removed when the key store has destroyed the
-- key, retried until then (crypto-shredding, R5 R36). user_id is NULL for
-- every key of the organisation. No foreign keys: the owner is gone.
CREATE TABLE key_shreds (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    user_id    TEXT,
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL
);

-- Background re-encryption after an organisation key rotation: one row per
-- organisation. A pass visits the organisation's sealed rows in id order,
-- table by table (phase), re-sealing what is not under the active version;
-- after_id records how far it got, so an interrupted run resumes. The job
-- finishes with a pass that began once every process's key cache has
-- forgotten the versions before the rotation (started_at + the cache TTL),
-- so no row sealed by a stale cache is missed. Audit rows are never
-- re-encrypted (DESIGN §4).
CREATE TABLE key_reencryptions (
    org_id          TEXT PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    key_version     TEXT NOT NULL,
    started_at      INTEGER NOT NULL,
    pass_started_at INTEGER NOT NULL,
    phase           TEXT NOT NULL,
    after_id        TEXT NOT NULL,
    done            INTEGER NOT NULL,
    resealed        INTEGER NOT NULL,
    finished_at     INTEGER
);
