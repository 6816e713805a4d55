-- The hub's durable state. JSON columns hold small lists (scopes, tags, roles).
CREATE TABLE tenants (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    email         TEXT,
    password_hash TEXT NOT NULL,
    tenants       TEXT NOT NULL DEFAULT '[]',
    roles         TEXT NOT NULL DEFAULT '[]',
    permissions   TEXT NOT NULL DEFAULT '[]',
    claims        TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE mcp_servers (
    id     TEXT PRIMARY KEY,
    name   TEXT NOT NULL,
    path   TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL DEFAULT '[]',
    tools  TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE clients (
    client_id                  TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    trust_level                TEXT NOT NULL,
    secret_hash                TEXT,
    token_endpoint_auth_method TEXT NOT NULL,
    redirect_uris              TEXT NOT NULL DEFAULT '[]',
    grant_types                TEXT NOT NULL DEFAULT '[]',
    allowed_resources          TEXT NOT NULL DEFAULT '[]',
    allowed_scopes             TEXT NOT NULL DEFAULT '[]',
    tags                       TEXT NOT NULL DEFAULT '[]',
    tenant                     TEXT,
    metadata                   TEXT NOT NULL DEFAULT '{}',
    created_at                 INTEGER NOT NULL
);

-- A pending authorization request between /authorize and the redirect back.
CREATE TABLE authorization_requests (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients(client_id),
    redirect_uri   TEXT NOT NULL,
    resource       TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    state          TEXT,
    code_challenge TEXT,
    correlation_id TEXT NOT NULL,
    user_id        TEXT REFERENCES users(id),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    completed      INTEGER NOT NULL DEFAULT 0
);

-- Codes are stored as SHA-256 digests: a database leak yields no usable code.
CREATE TABLE authorization_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    resource       TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    code_challenge TEXT,
    user_id        TEXT NOT NULL,
    tenant         TEXT,
    correlation_id TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    redeemed_at    INTEGER
);

CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    resource   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id, resource)
);

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    algorithm  TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);

-- Append-only: nothing in the hub updates or deletes a row here.
CREATE TABLE audit_events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    time             INTEGER NOT NULL,
    type             TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    actor_type       TEXT NOT NULL,
    actor_id         TEXT,
    user_id          TEXT,
    tenant           TEXT,
    client_id        TEXT,
    resource         TEXT,
    scopes_requested TEXT NOT NULL DEFAULT '[]',
    scopes_granted   TEXT NOT NULL DEFAULT '[]',
    reason           TEXT,
    correlation_id   TEXT,
    source_ip        TEXT
);
CREATE INDEX audit_events_type ON audit_events(type);
CREATE INDEX audit_events_correlation ON audit_events(correlation_id);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
