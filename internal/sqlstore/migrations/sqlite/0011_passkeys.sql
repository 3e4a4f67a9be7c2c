-- Passkeys and security keys (WebAuthn, R17). A person may register several,
-- each with a name they chose (sealed under their key). record is the
-- credential record the relying party keeps (credential id, public key, sign
-- count, flags): no secret. credential_hash (SHA-256 of the credential id)
-- keeps one credential from being registered twice.
CREATE TABLE passkeys (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_hash BLOB NOT NULL,
    name            BLOB NOT NULL,
    record          BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    UNIQUE (org_id, credential_hash)
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- A WebAuthn ceremony under way: its challenge and parameters, bound to what
-- started it (a session for a registration or a re-authentication, a login
-- challenge for a second step), single-use and valid five minutes.
CREATE TABLE passkey_ceremonies (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    bound_to   TEXT NOT NULL,
    data       BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (purpose, bound_to)
);
CREATE INDEX passkey_ceremonies_user ON passkey_ceremonies (user_id);

-- Wrong second-factor answers of a person, whatever the method (they were
-- kept on the TOTP row, which a person with only passkeys has not).
CREATE TABLE factor_guards (
    user_id      TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    failures     INTEGER NOT NULL,
    locked_until INTEGER
);
INSERT INTO factor_guards (user_id, org_id, failures, locked_until)
    SELECT user_id, org_id, failures, locked_until FROM user_factors WHERE kind = 'totp' AND (failures > 0 OR locked_until IS NOT NULL);
