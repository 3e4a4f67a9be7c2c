-- SMS codes as a second factor (R17). The verified number is a user_factors
-- row of kind 'sms' (its secret column holds the E.164 number, sealed under
-- the person's key), so resets, the policy and key rotation treat it as the
-- other factors.

-- Codes sent by SMS: six digits, kept as an HMAC under the organisation's
-- index key bound to the code's id, valid five minutes, single-use, bound to
-- what asked for them (the session of an enrolment or a re-authentication,
-- the login challenge of a second step). Rows stay an hour after use: they
-- count towards the limits on codes per challenge and per person.
CREATE TABLE sms_codes (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    bound_to   TEXT NOT NULL,
    code_hash  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    attempts   INTEGER NOT NULL
);
CREATE INDEX sms_codes_user ON sms_codes (user_id, created_at);
CREATE INDEX sms_codes_bound ON sms_codes (bound_to);

-- Text messages waiting for the SMS worker, as mail_queue: number and text
-- in one envelope sealed under the recipient's key. A message is useless
-- once its code lapsed (expires_at) and is dropped then.
CREATE TABLE sms_queue (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    envelope        BLOB NOT NULL
);
CREATE INDEX sms_queue_due ON sms_queue (next_attempt_at);
CREATE INDEX sms_queue_user ON sms_queue (user_id);
