-- A person's own history (recent sign-ins under My account, R4) is read by
-- target, newest first, without walking the whole chain.
CREATE INDEX audit_events_target ON audit_events (chain, target, seq);
