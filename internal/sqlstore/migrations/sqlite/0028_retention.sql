-- Retention (R25 R35 R36): how long an organisation keeps inactive people
-- and audit events, when its licence ended (read-only grace, then purge),
-- when a person was told that their account will be erased for inactivity,
-- and the signed records of pruned audit chains.
ALTER TABLE orgs ADD COLUMN inactive_user_days INTEGER NOT NULL DEFAULT 730;
ALTER TABLE orgs ADD COLUMN audit_retention_days INTEGER NOT NULL DEFAULT 730;
ALTER TABLE orgs ADD COLUMN terminated_at INTEGER;
ALTER TABLE users ADD COLUMN inactivity_notice_at INTEGER;

-- A prune record is a signed statement (label kluis/prune/v1) that the
-- events 1..seq of a chain were removed on purpose, event seq having hash
-- hash: the verifier starts the chain after it. Never deleted.
CREATE TABLE audit_prunes (
    chain     TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    hash      BLOB NOT NULL,
    at        INTEGER NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (chain, seq)
);
