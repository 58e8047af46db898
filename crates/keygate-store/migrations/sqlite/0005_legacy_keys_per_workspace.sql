-- Issue #15, two changes for imported legacy keys. Kept identical to
-- migrations/postgres/0005_legacy_keys_per_workspace.sql in effect.
--
-- 1. A secret hash is unique per workspace, not globally. A legacy key is whatever string
--    another system issued, so two tenants can hold the same one; with a global key, importing
--    a key another workspace held answered `already_imported`, which told any owner whether
--    a guessed key existed in some other tenant. Native keys stay globally unique by
--    construction (154 random bits), and their lookup by hash alone uses the new index.
--    SQLite cannot change a primary key in place, so the table is rebuilt; nothing references
--    it, so dropping the old one is safe inside the migration's transaction.
CREATE TABLE key_secrets_per_workspace (
    hash         BLOB NOT NULL,
    key_id       TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, hash)
);
INSERT INTO key_secrets_per_workspace (hash, key_id, workspace_id, expires_at, created_at)
    SELECT hash, key_id, workspace_id, expires_at, created_at FROM key_secrets;
DROP TABLE key_secrets;
ALTER TABLE key_secrets_per_workspace RENAME TO key_secrets;
CREATE INDEX key_secrets_key_idx ON key_secrets (key_id);
CREATE INDEX key_secrets_hash_idx ON key_secrets (hash);

-- 2. Display forms of legacy keys made before the fix could show most of the key
--    (`acme_S3cr3tP4ssw0rdXYZ0123456_…`). The key itself is not stored, so the new form cannot
--    be computed; the first two characters (what the new rule shows at the front of the
--    shortest legacy key) are kept. The audit rows of those keys get the same replacement.
--    Request-log and failed-attempt rows written before the upgrade age out with their
--    retention (7 and 90 days by default).
UPDATE audit_log
SET changes = (
    SELECT REPLACE(audit_log.changes, k.display,
        CASE WHEN k.display LIKE 'sha256:%' THEN 'sha256:' || substr(k.display, 8, 4) || '…'
             ELSE substr(k.display, 1, 2) || '…' END)
    FROM api_keys k WHERE k.id = audit_log.target_id
)
WHERE target_type = 'key'
  AND target_id IN (SELECT id FROM api_keys WHERE legacy = 1 AND display <> '');
UPDATE api_keys
SET display = CASE WHEN display LIKE 'sha256:%' THEN 'sha256:' || substr(display, 8, 4) || '…'
                   ELSE substr(display, 1, 2) || '…' END
WHERE legacy = 1 AND display <> '';
