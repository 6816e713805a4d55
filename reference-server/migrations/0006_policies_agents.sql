-- MCP Server Policies: allow rules evaluated at consent and token issuance.
-- Conditions and grants are stored as validated JSON (see src/policy.rs).
CREATE TABLE policies (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    conditions  TEXT NOT NULL,
    grants      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Agent lifecycle: a decommissioned client can no longer authenticate, and
-- every token issued to it up to that moment is invalid.
-- (An agent's associated user and its source/time conditions live in its metadata.)
ALTER TABLE clients ADD COLUMN decommissioned_at INTEGER;

-- Audit: the policies that matched a decision, and a token's delegation chain.
ALTER TABLE audit_events ADD COLUMN policies TEXT NOT NULL DEFAULT '[]';
ALTER TABLE audit_events ADD COLUMN act TEXT;
