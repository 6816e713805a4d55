-- Audit events describe the client as it was when they happened (name,
-- trust level, tags) and say why each dropped scope was dropped.
ALTER TABLE audit_events ADD COLUMN client_name TEXT;
ALTER TABLE audit_events ADD COLUMN client_trust_level TEXT;
ALTER TABLE audit_events ADD COLUMN client_tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE audit_events ADD COLUMN scopes_dropped TEXT NOT NULL DEFAULT '[]';
