-- One sign-in for both realms (issue 11). Sessions, second factors, recovery
-- codes, login challenges, passkeys and their ceremonies, and the count of
-- wrong second-factor answers belong to anyone who signs in — a user of an
-- organisation or operator staff — and one implementation serves both. Their
-- rows are told apart by org_id ('' for the operator realm) and subject (the
-- user's or the operator's id); user_id or operator_id, whichever applies,
-- holds the foreign key that takes the rows with their owner (and a user's
-- with their organisation). Sealed values keep their associated data: the
-- label of a user's factor secret stays 'user_factors', an operator's
-- 'operator_factors' (docs/KEYS.md), so the rows move without re-encryption.

CREATE TABLE sessions_all (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    user_id      TEXT REFERENCES users (id) ON DELETE CASCADE,
    operator_id  TEXT REFERENCES operators (id) ON DELETE CASCADE,
    token_hash   BYTEA NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    auth_at      BIGINT NOT NULL,
    device       BYTEA
);
INSERT INTO sessions_all (id, org_id, subject, user_id, token_hash, created_at, last_seen_at, expires_at, auth_at, device)
    SELECT id, org_id, user_id, user_id, token_hash, created_at, last_seen_at, expires_at, COALESCE(auth_at, created_at), device FROM sessions;
INSERT INTO sessions_all (id, org_id, subject, operator_id, token_hash, created_at, last_seen_at, expires_at, auth_at)
    SELECT id, '', operator_id, operator_id, token_hash, created_at, last_seen_at, expires_at, created_at FROM operator_sessions;
DROP TABLE sessions;
DROP TABLE operator_sessions;
ALTER TABLE sessions_all RENAME TO sessions;
CREATE INDEX sessions_subject ON sessions (org_id, subject);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_operator ON sessions (operator_id);

-- A TOTP secret or an SMS number, sealed; an operator's row also holds the
-- sealed key of their recovery codes' keyed hashes (a user's are keyed by
-- their organisation's index key).
CREATE TABLE factors (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    user_id      TEXT REFERENCES users (id) ON DELETE CASCADE,
    operator_id  TEXT REFERENCES operators (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    secret       BYTEA NOT NULL,
    recovery_key BYTEA,
    last_step    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT,
    session_id   TEXT,
    UNIQUE (org_id, subject, kind)
);
INSERT INTO factors (id, org_id, subject, user_id, kind, secret, last_step, created_at, confirmed_at, session_id)
    SELECT id, org_id, user_id, user_id, kind, secret, last_step, created_at, confirmed_at, session_id FROM user_factors;
INSERT INTO factors (id, org_id, subject, operator_id, kind, secret, recovery_key, last_step, created_at, confirmed_at, session_id)
    SELECT id, '', operator_id, operator_id, 'totp', secret, recovery_key, last_step, created_at, confirmed_at, session_id FROM operator_factors;
DROP TABLE user_factors;
DROP TABLE operator_factors;
CREATE INDEX factors_user ON factors (user_id);
CREATE INDEX factors_operator ON factors (operator_id);
UPDATE key_reencryptions SET phase = 'factors' WHERE phase = 'user_factors';

CREATE TABLE recovery_codes_all (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    operator_id TEXT REFERENCES operators (id) ON DELETE CASCADE,
    code_hash   BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT
);
INSERT INTO recovery_codes_all (id, org_id, subject, user_id, code_hash, created_at, used_at)
    SELECT id, org_id, user_id, user_id, code_hash, created_at, used_at FROM recovery_codes;
INSERT INTO recovery_codes_all (id, org_id, subject, operator_id, code_hash, created_at, used_at)
    SELECT id, '', operator_id, operator_id, code_hash, created_at, used_at FROM operator_recovery_codes;
DROP TABLE recovery_codes;
DROP TABLE operator_recovery_codes;
ALTER TABLE recovery_codes_all RENAME TO recovery_codes;
CREATE INDEX recovery_codes_subject ON recovery_codes (org_id, subject);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);
CREATE INDEX recovery_codes_operator ON recovery_codes (operator_id);

-- The password step of a two-step sign-in: single use, five minutes, stored
-- as the SHA-256 of its token; attempts counts wrong answers; trusted marks
-- a password step that came with a valid device entry (DESIGN §6).
CREATE TABLE challenges (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    operator_id TEXT REFERENCES operators (id) ON DELETE CASCADE,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    trusted     BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO challenges (id, org_id, subject, user_id, token_hash, created_at, expires_at, attempts, trusted)
    SELECT id, org_id, user_id, user_id, token_hash, created_at, expires_at, attempts, trusted FROM login_challenges;
INSERT INTO challenges (id, org_id, subject, operator_id, token_hash, created_at, expires_at, attempts, trusted)
    SELECT id, '', operator_id, operator_id, token_hash, created_at, expires_at, attempts, trusted FROM operator_challenges;
DROP TABLE login_challenges;
DROP TABLE operator_challenges;
CREATE INDEX challenges_subject ON challenges (org_id, subject);
CREATE INDEX challenges_user ON challenges (user_id);
CREATE INDEX challenges_operator ON challenges (operator_id);

CREATE TABLE passkeys_all (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    subject         TEXT NOT NULL,
    user_id         TEXT REFERENCES users (id) ON DELETE CASCADE,
    operator_id     TEXT REFERENCES operators (id) ON DELETE CASCADE,
    credential_hash BYTEA NOT NULL,
    name            BYTEA NOT NULL,
    record          BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT,
    UNIQUE (org_id, credential_hash)
);
INSERT INTO passkeys_all (id, org_id, subject, user_id, credential_hash, name, record, created_at, last_used_at)
    SELECT id, org_id, user_id, user_id, credential_hash, name, record, created_at, last_used_at FROM passkeys;
DROP TABLE passkeys;
ALTER TABLE passkeys_all RENAME TO passkeys;
CREATE INDEX passkeys_subject ON passkeys (org_id, subject);
CREATE INDEX passkeys_user ON passkeys (user_id);
CREATE INDEX passkeys_operator ON passkeys (operator_id);

CREATE TABLE passkey_ceremonies_all (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    operator_id TEXT REFERENCES operators (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    bound_to    TEXT NOT NULL,
    data        BYTEA NOT NULL,
    expires_at  BIGINT NOT NULL,
    UNIQUE (purpose, bound_to)
);
INSERT INTO passkey_ceremonies_all (id, org_id, subject, user_id, purpose, bound_to, data, expires_at)
    SELECT id, org_id, user_id, user_id, purpose, bound_to, data, expires_at FROM passkey_ceremonies;
DROP TABLE passkey_ceremonies;
ALTER TABLE passkey_ceremonies_all RENAME TO passkey_ceremonies;
CREATE INDEX passkey_ceremonies_subject ON passkey_ceremonies (org_id, subject);
CREATE INDEX passkey_ceremonies_user ON passkey_ceremonies (user_id);
CREATE INDEX passkey_ceremonies_operator ON passkey_ceremonies (operator_id);

CREATE TABLE factor_guards_all (
    org_id       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    user_id      TEXT REFERENCES users (id) ON DELETE CASCADE,
    operator_id  TEXT REFERENCES operators (id) ON DELETE CASCADE,
    failures     BIGINT NOT NULL,
    locked_until BIGINT,
    PRIMARY KEY (org_id, subject)
);
INSERT INTO factor_guards_all (org_id, subject, user_id, failures, locked_until)
    SELECT org_id, user_id, user_id, failures, locked_until FROM factor_guards;
INSERT INTO factor_guards_all (org_id, subject, operator_id, failures, locked_until)
    SELECT '', id, id, factor_failures, factor_locked_until FROM operators WHERE factor_failures > 0 OR factor_locked_until IS NOT NULL;
DROP TABLE factor_guards;
ALTER TABLE factor_guards_all RENAME TO factor_guards;
CREATE INDEX factor_guards_user ON factor_guards (user_id);
CREATE INDEX factor_guards_operator ON factor_guards (operator_id);
ALTER TABLE operators DROP COLUMN factor_failures;
ALTER TABLE operators DROP COLUMN factor_locked_until;

-- The key of an operator's recovery codes' keyed hashes, sealed under the
-- platform key; new codes get a new key here. Codes made before this
-- migration are keyed by the recovery_key of the operator's TOTP row.
ALTER TABLE operators ADD COLUMN recovery_key BYTEA;
