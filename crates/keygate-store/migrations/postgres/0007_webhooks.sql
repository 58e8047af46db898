-- Issue #14: webhook endpoints and their deliveries. Kept identical in the SQLite and
-- PostgreSQL migrations (only BLOB vs BYTEA differs). A delivery is queued in the same
-- transaction as the audited change it tells about (see insert_audit in src/sql.rs), so the
-- audit log and the deliveries can never disagree.
CREATE TABLE webhook_endpoints (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    url          TEXT NOT NULL,
    description  TEXT,
    -- ",key.revoked,key.created," (each type between commas), or "" for every event.
    event_types  TEXT NOT NULL,
    enabled      BIGINT NOT NULL,
    -- The signing secret, sealed with a key derived from the server secret.
    secret       BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_workspace_idx ON webhook_endpoints (workspace_id);

CREATE TABLE webhook_deliveries (
    -- "<event id>:<endpoint id>": one delivery per event and endpoint, whatever retries.
    id               TEXT PRIMARY KEY,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    workspace_id     TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    -- pending | delivered | failed
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    last_status      BIGINT,
    last_error       TEXT,
    last_duration_ms BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at);
