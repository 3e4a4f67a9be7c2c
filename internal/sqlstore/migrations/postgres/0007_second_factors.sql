-- Second factors (R17). A TOTP secret is sealed under the user's key;
-- last_step is the last time step used, so every code works once. A factor
-- is pending until confirmed with a first code.
CREATE TABLE user_factors (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    secret       BYTEA NOT NULL,
    last_step    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT,
    UNIQUE (user_id, kind)
);

-- Ten single-use recovery codes per person with a factor, as SHA-256 hashes.
CREATE TABLE recovery_codes (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- The password step of a two-step login: a single-use challenge, valid five
-- minutes, stored as the SHA-256 of its token; attempts counts wrong codes.
CREATE TABLE login_challenges (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts   BIGINT NOT NULL
);
CREATE INDEX login_challenges_user ON login_challenges (user_id);

-- When the session's holder last proved who they are (sign-in, second
-- factor, re-authentication): sensitive changes need it within 5 minutes.
ALTER TABLE sessions ADD COLUMN auth_at BIGINT;
