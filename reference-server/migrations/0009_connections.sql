-- Connections: third-party services whose credentials the hub keeps
-- (docs/connections.md). Secrets are sealed with AES-256-GCM under a vault
-- key; `key_id` names it and `nonce` is the 96-bit GCM nonce.
CREATE TABLE connections (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    kind                   TEXT NOT NULL CHECK (kind IN ('oauth2', 'api_key')),
    authorization_endpoint TEXT,
    token_endpoint         TEXT,
    api_base_url           TEXT,
    client_id              TEXT,
    -- The connection's own client secret at the provider, sealed.
    secret_key_id          TEXT,
    secret_nonce           BLOB,
    secret_sealed          BLOB,
    scopes                 TEXT NOT NULL DEFAULT '[]',
    allowed_clients        TEXT NOT NULL DEFAULT '[]',
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);

-- One stored credential per connection and owner. `scope_key` is '' for the
-- token as granted; a non-empty key holds a narrower access token obtained
-- from it (its refresh token stays on the '' row). Everything secret,
-- including expiry and scopes, is in `sealed`.
CREATE TABLE connection_tokens (
    id                INTEGER PRIMARY KEY,
    connection_id     TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    owner_kind        TEXT NOT NULL CHECK (owner_kind IN ('user', 'tenant', 'agent')),
    owner_id          TEXT NOT NULL,
    scope_key         TEXT NOT NULL DEFAULT '',
    key_id            TEXT NOT NULL,
    nonce             BLOB NOT NULL,
    sealed            BLOB NOT NULL,
    needs_reauth      INTEGER NOT NULL DEFAULT 0,
    last_refreshed_at INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (connection_id, owner_kind, owner_id, scope_key)
);

-- A known value sealed under each vault key the hub has used, so that a
-- restart with a missing or wrong key is refused instead of failing later.
CREATE TABLE vault_keys (
    key_id     TEXT PRIMARY KEY,
    nonce      BLOB NOT NULL,
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
