-- A manager (or the operator) can stop every login of an organisation at once
-- (R19): while set, no session opens and every session but the caller's ended.
ALTER TABLE orgs ADD COLUMN logins_disabled BOOLEAN NOT NULL DEFAULT FALSE;
