-- Scheduled work (DESIGN §9). Every run of a job is a row: the node that
-- ran it, when, and how it ended (running, ok, failed, abandoned), with a
-- detail that holds no personal data.
CREATE TABLE job_runs (
    id          TEXT PRIMARY KEY,
    job         TEXT NOT NULL,
    holder      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX job_runs_job_started ON job_runs (job, started_at);
CREATE INDEX job_runs_started ON job_runs (started_at);

-- The run that holds a job's lease (the next claimer after the lease
-- expires marks it abandoned), and when the job last failed: it is retried
-- after a short back-off. last_run_at is the start of the last run that
-- succeeded.
ALTER TABLE job_leases ADD COLUMN run_id TEXT;
ALTER TABLE job_leases ADD COLUMN failed_at BIGINT;

-- What needs the operator's attention. An open alert of a kind and subject
-- is one row: raising it again moves at and detail and counts the raise.
CREATE TABLE alerts (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    opened_at   BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    raised      BIGINT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    resolved_at BIGINT
);
CREATE UNIQUE INDEX alerts_open ON alerts (kind, subject) WHERE resolved_at IS NULL;
CREATE INDEX alerts_at ON alerts (at);
