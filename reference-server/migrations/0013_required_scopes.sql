-- The scopes an MCP server cannot work without: the consent page shows them
-- as mandatory, and declining one declines the whole request.
ALTER TABLE mcp_servers ADD COLUMN required_scopes TEXT NOT NULL DEFAULT '[]';
