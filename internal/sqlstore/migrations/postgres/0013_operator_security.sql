-- Operator accounts get what users have (issue 5 item 8, R17, R18, R22).
--
-- An operator's authenticator app: the TOTP secret and the key of the
-- recovery codes' keyed hashes, both sealed under the platform key (the
-- associated data names this table, the column and the row id). last_step
-- is the last time step used, so every code works once; the row is pending
-- until confirmed, and a pending set-up belongs to the session that started
-- it. One per operator.
CREATE TABLE operator_factors (
    id           TEXT PRIMARY KEY,
    operator_id  TEXT NOT NULL UNIQUE REFERENCES operators (id) ON DELETE CASCADE,
    secret       BYTEA NOT NULL,
    recovery_key BYTEA NOT NULL,
    last_step    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT,
    session_id   TEXT
);

-- Ten single-use recovery codes per operator with a factor, as HMACs under
-- the operator's sealed recovery key (so a copy of the database alone
-- cannot be searched).
CREATE TABLE operator_recovery_codes (
    id          TEXT PRIMARY KEY,
    operator_id TEXT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    code_hash   BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX operator_recovery_codes_operator ON operator_recovery_codes (operator_id);

-- The password step of an operator's two-step sign-in: single use, five
-- minutes, stored as the SHA-256 of its token; attempts counts wrong codes.
CREATE TABLE operator_challenges (
    id          TEXT PRIMARY KEY,
    operator_id TEXT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    trusted     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX operator_challenges_operator ON operator_challenges (operator_id);

-- Wrong second-factor codes of an operator in a row, across challenges and
-- re-authentications, and the growing lock they start.
ALTER TABLE operators ADD COLUMN factor_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE operators ADD COLUMN factor_locked_until BIGINT;

-- The instance-wide logins switch (R19) is the settings row
-- 'logins_stopped': while it exists, no organisation's user signs in.
