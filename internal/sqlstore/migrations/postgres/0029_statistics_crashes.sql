-- Anonymous usage statistics (R37): how often each feature (a route's
-- method and pattern, or a named feature) was used on each UTC day. No
-- person, address, organisation, session or request: nothing to anonymise.
CREATE TABLE usage_counts (
    day     TEXT NOT NULL,
    feature TEXT NOT NULL,
    count   BIGINT NOT NULL,
    PRIMARY KEY (day, feature)
);

-- Crash reports (R38): a recovered panic's scrubbed message and stack,
-- sealed under the platform key (report); the route's pattern and the
-- request id in clear, for the list. Deleted 30 days after the crash.
CREATE TABLE crash_reports (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    route      TEXT NOT NULL,
    request_id TEXT NOT NULL,
    report     BYTEA NOT NULL
);
CREATE INDEX crash_reports_at ON crash_reports (at);
