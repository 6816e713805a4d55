-- Enterprise single sign-on (docs/sso.md). A tenant's upstream OpenID
-- Provider: its settings as JSON, and the hub's client secret at it sealed
-- with the vault key (`<key id>.<nonce>.<ciphertext>`).
ALTER TABLE tenants ADD COLUMN sso TEXT;
ALTER TABLE tenants ADD COLUMN sso_secret TEXT;

-- Who a provider's subject is at the hub: the user created or linked on the
-- first sign-in through it (OpenID Connect Core §2: `iss` and `sub`
-- together identify the user).
CREATE TABLE user_identities (
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users(id),
    tenant        TEXT NOT NULL,
    linked_at     INTEGER NOT NULL,
    last_login_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);
