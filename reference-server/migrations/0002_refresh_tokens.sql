-- Refresh tokens, stored as SHA-256 digests. A family is every token rotated
-- from one authorization: reuse of a rotated token revokes the whole family
-- (RFC 9700 §4.14.2).
CREATE TABLE refresh_tokens (
    token_hash   TEXT PRIMARY KEY,
    family_id    TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    tenant       TEXT,
    resource     TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    issued_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    rotated_at   INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
