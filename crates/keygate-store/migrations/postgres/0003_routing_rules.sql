-- Routing rules of the AI gateway (see keygate-core/src/routing.rs). The rule's mode and
-- targets are one JSON document (`body`); the columns beside it are what queries filter and
-- what the schema must enforce: one name per workspace, at most one default per workspace.
-- Keys point at a rule through api_keys.routing_rule_id (no foreign key: deleting a rule
-- clears the references in the same transaction).

CREATE TABLE routing_rules (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name         TEXT NOT NULL,
    is_default   BIGINT NOT NULL,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    version      BIGINT NOT NULL
);
CREATE UNIQUE INDEX routing_rules_name_uq ON routing_rules (workspace_id, name);
CREATE UNIQUE INDEX routing_rules_default_uq ON routing_rules (workspace_id) WHERE is_default = 1;
CREATE INDEX api_keys_routing_rule_idx ON api_keys (routing_rule_id);
