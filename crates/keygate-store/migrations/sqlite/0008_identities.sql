-- Issue #14: identities, the customers who hold keys. An identity's limits are counted once
-- for all its keys (the limiter does that); here it is a row, and a key names it.
-- `external_id` is the platform's own id for the customer, unique per workspace. Kept
-- identical in the SQLite and PostgreSQL migrations.
CREATE TABLE identities (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    external_id  TEXT NOT NULL,
    name         TEXT,
    metadata     TEXT NOT NULL,
    limits       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    version      BIGINT NOT NULL
);
CREATE UNIQUE INDEX identities_external_uq ON identities (workspace_id, external_id);
CREATE INDEX identities_page_idx ON identities (workspace_id, created_at DESC, id DESC);
-- No foreign key: SQLite cannot add one to an existing table. The server checks that the
-- identity is in the key's workspace, and deleting an identity that still has keys is refused
-- inside the deleting transaction.
ALTER TABLE api_keys ADD COLUMN identity_id TEXT;
CREATE INDEX api_keys_identity_idx ON api_keys (workspace_id, identity_id);
