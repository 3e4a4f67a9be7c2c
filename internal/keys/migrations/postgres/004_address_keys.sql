-- Content-address keys (DESIGN §8): one HMAC-SHA-256 key per project, made
-- and destroyed with the project key, wrapped by the organisation key.
ALTER TABLE keys DROP CONSTRAINT keys_kind_check;
ALTER TABLE keys ADD CONSTRAINT keys_kind_check
	CHECK (kind IN ('org', 'index', 'user', 'project', 'address', 'platform'));

ALTER TABLE key_events DROP CONSTRAINT key_events_kind_check;
ALTER TABLE key_events ADD CONSTRAINT key_events_kind_check
	CHECK (kind IN ('org', 'index', 'user', 'project', 'address', 'platform', ''));
