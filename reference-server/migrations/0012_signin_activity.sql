-- A sign-in session ends at its lifetime (expires_at) or after a spell of
-- disuse: last_seen_at is when an authorization last used it, and the idle
-- timeout is counted from there. created_at is when the user proved who
-- they are, from which max_age (OIDC Core §3.1.2.1) is measured.
ALTER TABLE signin_sessions ADD COLUMN last_seen_at INTEGER NOT NULL DEFAULT 0;
UPDATE signin_sessions SET last_seen_at = created_at;
