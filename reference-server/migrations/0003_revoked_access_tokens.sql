-- Revoked access tokens by jti (RFC 7009), kept until the token would have
-- expired anyway; the resource endpoint and introspection consult it.
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
);
