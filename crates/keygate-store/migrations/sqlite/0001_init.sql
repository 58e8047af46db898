-- Keygate's schema, SQLite dialect. Kept column-for-column identical to
-- migrations/postgres/0001_init.sql (only BLOB vs BYTEA differs) because one set of queries
-- (src/sql.rs) serves both backends: timestamps are BIGINT unix milliseconds, booleans BIGINT
-- 0/1, structured values TEXT holding JSON.

CREATE TABLE workspaces (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    key_prefix          TEXT NOT NULL,
    single_active_key   BIGINT NOT NULL,
    default_rate_limits TEXT NOT NULL,
    rate_limit_policies TEXT NOT NULL,
    credit_balance      BIGINT,
    created_at          BIGINT NOT NULL
);

CREATE TABLE members (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    token_display TEXT NOT NULL,
    token_hash    BLOB NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX members_token_hash_uq ON members (token_hash);
CREATE INDEX members_workspace_idx ON members (workspace_id, created_at);

CREATE TABLE projects (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX projects_name_uq ON projects (workspace_id, name);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    name            TEXT NOT NULL,
    -- Lower-cased in Rust, so search is case-insensitive the same way on both backends.
    name_lower      TEXT NOT NULL,
    description     TEXT,
    environment     TEXT NOT NULL,
    scope_all       BIGINT NOT NULL,
    scope           TEXT NOT NULL,
    permissions     TEXT NOT NULL,
    expires_at      BIGINT,
    status          TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    limits          TEXT NOT NULL,
    routing_rule_id TEXT,
    display         TEXT NOT NULL,
    legacy          BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_used_at    BIGINT,
    version         BIGINT NOT NULL,
    -- The environment while the key is active under the "one active key" policy, else NULL;
    -- the unique index below enforces the policy atomically (NULLs never collide).
    active_slot     TEXT
);
CREATE UNIQUE INDEX api_keys_name_uq ON api_keys (workspace_id, name);
CREATE UNIQUE INDEX api_keys_active_slot_uq ON api_keys (workspace_id, active_slot);
CREATE INDEX api_keys_page_idx ON api_keys (workspace_id, created_at DESC, id DESC);
CREATE INDEX api_keys_legacy_idx ON api_keys (workspace_id) WHERE legacy = 1;

-- The projects of keys scoped to a list, so "keys of project P" is an indexed SQL filter
-- and pagination stays exact.
CREATE TABLE key_scopes (
    key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    PRIMARY KEY (key_id, project_id)
);

CREATE TABLE key_secrets (
    hash         BLOB PRIMARY KEY,
    key_id       TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX key_secrets_key_idx ON key_secrets (key_id);

CREATE TABLE idempotency (
    scope       TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    -- NULL while the claiming request is still running.
    status      BIGINT,
    body        BLOB,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_created_idx ON idempotency (created_at);

-- No foreign keys: the trail outlives what it talks about (deleted keys and members).
CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    changes      TEXT NOT NULL,
    source_ip    TEXT,
    user_agent   TEXT,
    request_id   TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX audit_log_page_idx ON audit_log (workspace_id, at DESC, id DESC);
CREATE INDEX audit_log_target_idx ON audit_log (workspace_id, target_id, at DESC);
