-- E-mail address changes (R14, R45): nothing changes until the new address
-- confirms. One open request per user; the link's token is stored as its
-- SHA-256, the new address sealed under the user's key.
CREATE TABLE email_changes (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE,
    new_email  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX email_changes_user ON email_changes (user_id);

-- Personal API tokens (R14): the SHA-256 of the secret, the name sealed
-- under the user's key, a scope (read or full) and a required expiry.
-- last_client is a keyed hash of the address of the last use, so that a
-- use from the same address costs no lookup.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   BLOB NOT NULL UNIQUE,
    name         BLOB NOT NULL,
    scope        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    last_client  BLOB
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
CREATE INDEX api_tokens_org ON api_tokens (org_id);

-- The client addresses a token was used from, as keyed hashes (HMAC under
-- the organisation's index key), never in clear: a first use from a new
-- address is recorded in the audit chain.
CREATE TABLE api_token_clients (
    token_id      TEXT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    client_hash   BLOB NOT NULL,
    first_seen_at INTEGER NOT NULL,
    PRIMARY KEY (token_id, client_hash)
);
