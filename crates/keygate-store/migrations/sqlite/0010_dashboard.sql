-- Issue #11: the web dashboard's sign-in. Only hashes of the secrets are stored (a keyed
-- hash of the session id and of a one-time link's secret), so a copy of the database signs
-- nobody in. Sessions live here rather than in one node's memory so that any node accepts
-- them. Both tables cascade from `members`: deleting a member ends their sessions and links.
-- Kept identical in the SQLite and PostgreSQL migrations.
CREATE TABLE dashboard_sessions (
    id_hash      TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    member_id    TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_member_idx ON dashboard_sessions (member_id);
CREATE TABLE sign_in_links (
    secret_hash  TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    member_id    TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT
);
CREATE INDEX sign_in_links_member_idx ON sign_in_links (member_id);
