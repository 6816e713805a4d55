-- The hub console (/console): administrators, seeded from `[[admins]]`
-- (argon2id hashes only), and their sessions. A session is known to the
-- database by the SHA-256 digest of its cookie value only; its CSRF token is
-- echoed in every form the console renders and checked on every POST.
CREATE TABLE admins (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES admins(username) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
