-- A user's sign-in at the authorization pages, known to the database by the
-- SHA-256 digest of its cookie value only. An authorization request records
-- the session that signed in for it: its consent page and consent decision
-- are answered only to a browser presenting that session's cookie
-- (RFC 6749 §10.12), not to whoever learnt the request's handle.
CREATE TABLE signin_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX signin_sessions_expiry ON signin_sessions (expires_at);

ALTER TABLE authorization_requests ADD COLUMN session_hash TEXT;
