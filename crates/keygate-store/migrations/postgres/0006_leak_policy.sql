-- Issue #14: what a report of a leaked key (`POST /v1/leaks`) does to it: `revoke` (the
-- default), `disable` or `notify`. Kept identical in the SQLite and PostgreSQL migrations.
ALTER TABLE workspaces ADD COLUMN leak_policy TEXT NOT NULL DEFAULT 'revoke';
