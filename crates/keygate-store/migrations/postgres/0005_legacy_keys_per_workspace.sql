-- Issue #15, two changes for imported legacy keys. Kept identical in effect to
-- migrations/sqlite/0005_legacy_keys_per_workspace.sql; see there for why.
--
-- 1. A secret hash is unique per workspace, not globally (no cross-tenant `already_imported`
--    oracle); lookups by hash alone use the new index.
ALTER TABLE key_secrets DROP CONSTRAINT key_secrets_pkey;
ALTER TABLE key_secrets ADD CONSTRAINT key_secrets_pkey PRIMARY KEY (workspace_id, hash);
CREATE INDEX key_secrets_hash_idx ON key_secrets (hash);

-- 2. Display forms of legacy keys made before the fix keep only their first two characters,
--    in the key and in its audit rows.
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
