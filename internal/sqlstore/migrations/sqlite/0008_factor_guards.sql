-- A pending set-up belongs to the session that started it (and lapses after
-- 15 minutes); failures counts wrong second-factor codes of the person across
-- challenges, and locked_until stops every code for a growing time after
-- five of them (R17, R18).
ALTER TABLE user_factors ADD COLUMN session_id TEXT;
ALTER TABLE user_factors ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_factors ADD COLUMN locked_until INTEGER;
