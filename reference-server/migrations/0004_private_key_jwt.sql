-- Clients that authenticate with private_key_jwt (RFC 7523 §2.2) register
-- their public keys as a JWK Set; assertion jtis are single-use.
ALTER TABLE clients ADD COLUMN jwks TEXT;

CREATE TABLE used_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);
