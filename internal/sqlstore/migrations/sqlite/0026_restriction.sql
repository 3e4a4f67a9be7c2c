-- Restriction of processing (issue 15, R34): while restricted_at is set the
-- person's data does not change, no mail is sent about them, and exports to
-- others leave their personal values out. NULL is not restricted.
-- maintenance_emails has no default: new people start opted out in the
-- code that invites them (R40); existing choices are not touched.
ALTER TABLE users ADD COLUMN restricted_at INTEGER;
