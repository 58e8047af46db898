-- Issue #14 §3: webhook events no member's change causes, and endpoints disabled for failing.
-- (0008 is taken by identities, written in parallel.) Kept identical in the SQLite and
-- PostgreSQL migrations.

-- `credits.low` is sent when the remaining credit falls to this (micro-dollars); NULL: never.
ALTER TABLE workspaces ADD COLUMN credits_low_threshold BIGINT;

-- When the endpoint's current run of failed attempts began (NULL after a success), and why
-- Keygate disabled it, when it did.
ALTER TABLE webhook_endpoints ADD COLUMN failing_since BIGINT;
ALTER TABLE webhook_endpoints ADD COLUMN disabled_reason TEXT;

-- One row per event queued without an audit row (key.expiring, limit.threshold,
-- credits.low): the deliveries are inserted in the transaction that inserts the mark, and
-- the primary key lets only one node's transaction do so.
CREATE TABLE webhook_event_marks (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    -- "key.expiring:<key id>:<expires_at ms>:7d", "limit.threshold:…", "credits.low:…".
    mark         TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, mark)
);

-- The scan for keys about to expire reads a range of this, every minute, on every node.
CREATE INDEX api_keys_expiry_idx ON api_keys (expires_at) WHERE expires_at IS NOT NULL;
