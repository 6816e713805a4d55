-- Second factors (docs/mfa.md). A user's TOTP shared secret (RFC 6238) is
-- sealed with the vault key, as Connection secrets are; last_step is the
-- last time step a code was accepted for, so no code is accepted twice
-- (RFC 6238 §5.2). Recovery codes are stored as salted SHA-256 digests
-- (each is 120 random bits) and used once.
CREATE TABLE totp_factors (
    user_id     TEXT PRIMARY KEY REFERENCES users(id),
    key_id      TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    enrolled_at INTEGER NOT NULL,
    last_step   INTEGER NOT NULL DEFAULT -1
);

CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users(id),
    code_hash TEXT NOT NULL,
    used_at   INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- Who of a tenant must prove a second factor (JSON SecondFactorRule).
ALTER TABLE tenants ADD COLUMN second_factor TEXT NOT NULL DEFAULT '{}';

-- How each sign-in was proven (JSON Authentication: auth_time, acr, amr),
-- carried from the session to the request, its code and refresh tokens, and
-- into every access token they yield (RFC 9068 §2.2.1).
ALTER TABLE signin_sessions ADD COLUMN authentication TEXT;
ALTER TABLE authorization_requests ADD COLUMN authentication TEXT;
ALTER TABLE authorization_codes ADD COLUMN authentication TEXT;
ALTER TABLE refresh_tokens ADD COLUMN authentication TEXT;

-- A request whose user gave the right password and owes a second factor:
-- who, and the digest of the cookie of the browser that gave it. During
-- enrolment, the secret offered (sealed) until a first code confirms it.
ALTER TABLE authorization_requests ADD COLUMN pending_user_id TEXT;
ALTER TABLE authorization_requests ADD COLUMN pending_binding TEXT;
ALTER TABLE authorization_requests ADD COLUMN pending_secret TEXT;
