//! The one implementation of [`Store`], shared by SQLite and PostgreSQL.
//!
//! Both backends run the same runtime-checked queries through sqlx's `Any` driver, so a query
//! is written, fixed and reviewed once and CI needs no database at compile time. The SQL is
//! kept to what both dialects accept: `$N` placeholders (sqlx-sqlite binds `$N` by number),
//! `ON CONFLICT … DO NOTHING`, `UPDATE … FROM (VALUES …)`, no `RETURNING`, no booleans, no
//! dialect functions. What differs between the backends is only how a write transaction
//! starts and which pool serves reads; see [`SqlStore`].
//!
//! Uniqueness rules live in the schema (unique indexes), not in read-then-write code, so they
//! hold under concurrency on every node; their violations are mapped back to
//! [`ConflictKind`] here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keygate_core::model::{ApiKey, KeyMatch, Member, Project, Role, Workspace};
use keygate_core::routing::RoutingRule;
use keygate_core::{ids, KeyHash};
use sqlx::error::ErrorKind;
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};

use crate::codec::{
    self, bool_int, hash_bytes, millis, Cursor, DynamicQuery, KeyColumns, AUDIT_COLUMNS,
    KEY_COLUMNS, MEMBER_COLUMNS, PROJECT_COLUMNS, WORKSPACE_COLUMNS,
};
use crate::{
    AuditEntry, AuditFilter, ConflictKind, IdempotencyBegin, IdempotencyClaim, KeyFilter,
    NewMember, Page, PageRequest, SecretChange, Store, StoreError, StoreResult,
};

/// Which database is behind the pools; decides the few things the dialects do differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The store: a pool for reads and one for writes.
///
/// On PostgreSQL they are the same pool. On SQLite, which has one writer per file, the write
/// pool holds a single connection, so our own writers queue fairly on the pool instead of
/// spinning on the file lock, and every write transaction starts with `BEGIN IMMEDIATE`: it
/// takes the write lock up front (waiting up to `busy_timeout` if another process holds it)
/// instead of failing with `SQLITE_BUSY` when a read transaction tries to upgrade.
#[derive(Debug, Clone)]
pub(crate) struct SqlStore {
    pub(crate) backend: Backend,
    pub(crate) read: AnyPool,
    pub(crate) write: AnyPool,
}

/// Maps a sqlx error to the store's error. Never formats a query or its values: sqlx errors
/// carry neither, and the text ends up in logs.
pub(crate) fn db_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(ref e) if matches!(e.kind(), ErrorKind::UniqueViolation) => {
            StoreError::Conflict(conflict_kind(e.constraint().unwrap_or(e.message())))
        }
        // Every foreign key points at the parent a row belongs to (workspace, key).
        sqlx::Error::Database(ref e) if matches!(e.kind(), ErrorKind::ForeignKeyViolation) => {
            StoreError::NotFound
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(error.to_string()),
        other => StoreError::Database(other),
    }
}

/// What a unique violation collided on. PostgreSQL names the index
/// (`api_keys_name_uq`); SQLite names the columns (`UNIQUE constraint failed:
/// api_keys.workspace_id, api_keys.name`). Index names in the migrations must keep these words.
fn conflict_kind(what: &str) -> ConflictKind {
    if what.contains("active_slot") {
        ConflictKind::ActiveKey
    } else if what.contains("identities_external_uq") || what.contains("identities.external_id") {
        ConflictKind::ExternalId
    } else if [
        "api_keys_name_uq",
        "projects_name_uq",
        "routing_rules_name_uq",
        "api_keys.name",
        "projects.name",
        "routing_rules.name",
    ]
    .iter()
    .any(|name| what.contains(name))
    {
        ConflictKind::Name
    } else {
        ConflictKind::Id
    }
}

/// PostgreSQL's "deadlock detected" and "serialization failure": safe to retry.
fn is_transient(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e)
        if matches!(e.code().as_deref(), Some("40P01") | Some("40001")))
}

impl SqlStore {
    /// One row of a workspace-owned table by id; `NotFound` also for another workspace's id.
    pub(crate) async fn one_in_workspace<T>(
        &self,
        table: &str,
        columns: &str,
        workspace_id: &str,
        id: &str,
        decode: fn(&sqlx::any::AnyRow) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let row = sqlx::query(&format!(
            "SELECT {columns} FROM {table} WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound)?;
        decode(&row)
    }

    /// Every row of a workspace-owned table, oldest first.
    pub(crate) async fn all_in_workspace<T>(
        &self,
        table: &str,
        columns: &str,
        workspace_id: &str,
        decode: fn(&sqlx::any::AnyRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        sqlx::query(&format!(
            "SELECT {columns} FROM {table} WHERE workspace_id = $1 ORDER BY created_at, id"
        ))
        .bind(workspace_id)
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?
        .iter()
        .map(decode)
        .collect()
    }

    pub(crate) async fn begin_write(&self) -> StoreResult<Transaction<'static, Any>> {
        match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.write.begin().await,
        }
        .map_err(db_error)
    }
}

pub(crate) async fn commit(tx: Transaction<'static, Any>) -> StoreResult<()> {
    tx.commit().await.map_err(db_error)
}

/// Writes an audit row, and in the same transaction queues the webhook deliveries of the
/// event it is (`webhooks::queue_for_audit`): the one place every audited change passes.
pub(crate) async fn insert_audit(conn: &mut AnyConnection, audit: &AuditEntry) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, workspace_id, actor, action, target_type, target_id, \
         changes, source_ip, user_agent, request_id, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(audit.id.as_str())
    .bind(audit.workspace_id.as_str())
    .bind(audit.actor.as_str())
    .bind(audit.action.as_str())
    .bind(audit.target_type.as_str())
    .bind(audit.target_id.as_str())
    .bind(codec::to_json(&audit.changes)?)
    .bind(audit.source_ip.as_deref())
    .bind(audit.user_agent.as_deref())
    .bind(audit.request_id.as_str())
    .bind(millis(audit.at))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    crate::webhooks::queue_for_audit(conn, audit).await
}

async fn insert_member(conn: &mut AnyConnection, new: &NewMember) -> StoreResult<()> {
    let member = &new.member;
    sqlx::query(
        "INSERT INTO members (id, workspace_id, name, role, token_display, token_hash, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(member.id.as_str())
    .bind(member.workspace_id.as_str())
    .bind(member.name.as_str())
    .bind(member.role.as_str())
    .bind(member.token_display.as_str())
    .bind(hash_bytes(&new.token_hash))
    .bind(millis(member.created_at))
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn insert_secret(
    conn: &mut AnyConnection,
    key: &ApiKey,
    hash: &KeyHash,
    expires_at: Option<i64>,
    created_at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO key_secrets (hash, key_id, workspace_id, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash_bytes(hash))
    .bind(key.id.as_str())
    .bind(key.workspace_id.as_str())
    .bind(expires_at)
    .bind(millis(created_at))
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Whether the workspace's one-active-key policy is on, read in the caller's transaction.
///
/// The caller's flag comes from a cached workspace and may be stale by a policy change that
/// committed since; a stale "off" would save an active key without its slot and let a second
/// one in. On PostgreSQL the row is read `FOR SHARE`, so turning the policy on (which updates
/// the row, then gives every active key its slot) waits for this transaction or is seen by it;
/// SQLite has one writer at a time, so there the read alone is enough.
/// A key that names an identity must name one of its workspace; the row stays locked until
/// the key's transaction ends (see `identities.rs`). `UnknownIdentity` otherwise.
async fn check_identity(
    conn: &mut AnyConnection,
    backend: Backend,
    key: &ApiKey,
) -> StoreResult<()> {
    match &key.identity_id {
        Some(identity) => {
            if crate::identities::identity_exists(conn, backend, &key.workspace_id, identity)
                .await?
            {
                Ok(())
            } else {
                Err(StoreError::UnknownReference("identity"))
            }
        }
        None => Ok(()),
    }
}

async fn one_active_key_policy(
    conn: &mut AnyConnection,
    backend: Backend,
    workspace_id: &str,
) -> StoreResult<bool> {
    let lock = match backend {
        Backend::Postgres => " FOR SHARE",
        Backend::Sqlite => "",
    };
    let row = sqlx::query(&format!(
        "SELECT single_active_key FROM workspaces WHERE id = $1{lock}"
    ))
    .bind(workspace_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?;
    Ok(match row {
        Some(row) => {
            row.try_get::<i64, _>("single_active_key")
                .map_err(db_error)?
                != 0
        }
        None => false,
    })
}

/// Rewrites the `key_scopes` rows of a key from its scope.
async fn write_scopes(conn: &mut AnyConnection, key: &ApiKey, fresh: bool) -> StoreResult<()> {
    if !fresh {
        sqlx::query("DELETE FROM key_scopes WHERE key_id = $1")
            .bind(key.id.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    for project in codec::scoped_projects(&key.scope) {
        sqlx::query("INSERT INTO key_scopes (key_id, project_id) VALUES ($1, $2)")
            .bind(key.id.as_str())
            .bind(project)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

async fn fetch_key(conn: &mut AnyConnection, workspace_id: &str, id: &str) -> StoreResult<ApiKey> {
    let row = sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.workspace_id = $1 AND k.id = $2"
    ))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)?;
    codec::key_from_row(&row)
}

/// Most `last_used_at` updates sent in one statement (two bound values each). Kept small: sqlx's
/// SQLite driver looks up every parameter's name by a linear scan, so binding costs grow with
/// the square of the parameters per statement; with 10,000 hot keys a chunk of 400 cost tens
/// of milliseconds of the server's core each second.
const TOUCH_CHUNK: usize = 50;

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .fetch_one(&self.read)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    // --- workspaces -----------------------------------------------------------------------

    async fn workspace_count(&self) -> StoreResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM workspaces")
            .fetch_one(&self.read)
            .await
            .map_err(db_error)?;
        let n: i64 = row.try_get("n").map_err(db_error)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_workspace(
        &self,
        workspace: &Workspace,
        owner: &NewMember,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO workspaces ({WORKSPACE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(workspace.id.as_str())
        .bind(workspace.name.as_str())
        .bind(workspace.key_prefix.as_str())
        .bind(bool_int(workspace.single_active_key))
        .bind(codec::to_json(&workspace.default_rate_limits)?)
        .bind(codec::to_json(&workspace.rate_limit_policies)?)
        .bind(workspace.credit_balance.map(|m| m.0))
        .bind(millis(workspace.created_at))
        .bind(workspace.leak_policy.as_str())
        .bind(workspace.credits_low_threshold.map(|m| m.0))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_member(&mut tx, owner).await?;
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    async fn workspace(&self, id: &str) -> StoreResult<Workspace> {
        let row = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound)?;
        codec::workspace_from_row(&row)
    }

    async fn save_workspace(&self, workspace: &Workspace, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE workspaces SET name = $2, key_prefix = $3, single_active_key = $4, \
             default_rate_limits = $5, rate_limit_policies = $6, credit_balance = $7, \
             leak_policy = $8, credits_low_threshold = $9 WHERE id = $1",
        )
        .bind(workspace.id.as_str())
        .bind(workspace.name.as_str())
        .bind(workspace.key_prefix.as_str())
        .bind(bool_int(workspace.single_active_key))
        .bind(codec::to_json(&workspace.default_rate_limits)?)
        .bind(codec::to_json(&workspace.rate_limit_policies)?)
        .bind(workspace.credit_balance.map(|m| m.0))
        .bind(workspace.leak_policy.as_str())
        .bind(workspace.credits_low_threshold.map(|m| m.0))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // The one-active-key policy is the unique index on (workspace, active_slot): keys
        // saved before it was turned on take their slot now, in this transaction, so two
        // active keys of one environment make it fail (`Conflict(ActiveKey)`) rather than
        // slip past; turned off, every slot is freed.
        let slots = if workspace.single_active_key {
            "UPDATE api_keys SET active_slot = environment \
             WHERE workspace_id = $1 AND status = 'active' AND active_slot IS NULL"
        } else {
            "UPDATE api_keys SET active_slot = NULL \
             WHERE workspace_id = $1 AND active_slot IS NOT NULL"
        };
        sqlx::query(slots)
            .bind(workspace.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    // --- members ----------------------------------------------------------------------------

    async fn member_by_token(&self, token_hash: &KeyHash) -> StoreResult<Option<Member>> {
        sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE token_hash = $1"
        ))
        .bind(hash_bytes(token_hash))
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?
        .map(|row| codec::member_from_row(&row))
        .transpose()
    }

    async fn create_member(&self, member: &NewMember, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_member(&mut tx, member).await?;
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    async fn member(&self, workspace_id: &str, id: &str) -> StoreResult<Member> {
        self.one_in_workspace(
            "members",
            MEMBER_COLUMNS,
            workspace_id,
            id,
            codec::member_from_row,
        )
        .await
    }

    async fn list_members(&self, workspace_id: &str) -> StoreResult<Vec<Member>> {
        self.all_in_workspace(
            "members",
            MEMBER_COLUMNS,
            workspace_id,
            codec::member_from_row,
        )
        .await
    }

    async fn delete_member(
        &self,
        workspace_id: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        // A no-op write locks the workspace row, so two owners deleting each other at the same
        // moment on PostgreSQL are serialised and cannot both pass the owner count below.
        // (SQLite's BEGIN IMMEDIATE already serialises every writer.)
        let locked = sqlx::query("UPDATE workspaces SET name = name WHERE id = $1")
            .bind(workspace_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if locked.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let role: String =
            sqlx::query("SELECT role FROM members WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
                .ok_or(StoreError::NotFound)?
                .try_get("role")
                .map_err(db_error)?;
        if role == Role::Owner.as_str() {
            let owners: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM members WHERE workspace_id = $1 AND role = $2",
            )
            .bind(workspace_id)
            .bind(Role::Owner.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?
            .try_get("n")
            .map_err(db_error)?;
            if owners <= 1 {
                return Err(StoreError::Conflict(ConflictKind::LastOwner));
            }
        }
        sqlx::query("DELETE FROM members WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    // --- projects ---------------------------------------------------------------------------

    async fn create_project(&self, project: &Project, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO projects ({PROJECT_COLUMNS}) VALUES ($1, $2, $3, $4)"
        ))
        .bind(project.id.as_str())
        .bind(project.workspace_id.as_str())
        .bind(project.name.as_str())
        .bind(millis(project.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    async fn project(&self, workspace_id: &str, id: &str) -> StoreResult<Project> {
        self.one_in_workspace(
            "projects",
            PROJECT_COLUMNS,
            workspace_id,
            id,
            codec::project_from_row,
        )
        .await
    }

    async fn list_projects(&self, workspace_id: &str) -> StoreResult<Vec<Project>> {
        self.all_in_workspace(
            "projects",
            PROJECT_COLUMNS,
            workspace_id,
            codec::project_from_row,
        )
        .await
    }

    // --- keys -------------------------------------------------------------------------------

    async fn create_key(
        &self,
        key: &ApiKey,
        secret: &KeyHash,
        single_active: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let single_active = single_active
            || one_active_key_policy(&mut tx, self.backend, &key.workspace_id).await?;
        check_identity(&mut tx, self.backend, key).await?;
        let c = KeyColumns::encode(key, single_active)?;
        sqlx::query(
            "INSERT INTO api_keys (id, workspace_id, name, name_lower, description, environment, \
             scope_all, scope, permissions, expires_at, status, metadata, limits, \
             routing_rule_id, display, legacy, created_by, created_at, updated_at, \
             last_used_at, version, active_slot, identity_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20, $21, $22, $23)",
        )
        .bind(key.id.as_str())
        .bind(key.workspace_id.as_str())
        .bind(c.name)
        .bind(c.name_lower)
        .bind(c.description)
        .bind(c.environment)
        .bind(c.scope_all)
        .bind(c.scope)
        .bind(c.permissions)
        .bind(c.expires_at)
        .bind(c.status)
        .bind(c.metadata)
        .bind(c.limits)
        .bind(c.routing_rule_id)
        .bind(c.display)
        .bind(c.legacy)
        .bind(key.created_by.as_str())
        .bind(millis(key.created_at))
        .bind(c.updated_at)
        .bind(codec::opt_millis(key.last_used_at))
        .bind(key.version)
        .bind(c.active_slot)
        .bind(c.identity_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        write_scopes(&mut tx, key, true).await?;
        insert_secret(&mut tx, key, secret, None, key.created_at).await?;
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    async fn key(&self, workspace_id: &str, id: &str) -> StoreResult<ApiKey> {
        let mut conn = self.read.acquire().await.map_err(db_error)?;
        fetch_key(&mut conn, workspace_id, id).await
    }

    async fn list_keys(
        &self,
        workspace_id: &str,
        filter: &KeyFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiKey>> {
        let limit = codec::clamp_limit(page.limit);
        let mut q = DynamicQuery::new(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.workspace_id = "
        ));
        q.text(workspace_id);
        if let Some(status) = filter.status {
            q.push(" AND k.status = ").text(status.as_str());
        }
        if let Some(environment) = &filter.environment {
            q.push(" AND k.environment = ").text(environment);
        }
        if let Some(project) = &filter.project {
            q.push(
                " AND (k.scope_all = 1 OR EXISTS (SELECT 1 FROM key_scopes s \
                 WHERE s.key_id = k.id AND s.project_id = ",
            )
            .text(project)
            .push("))");
        }
        if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
            q.push(" AND k.name_lower LIKE ")
                .text(&codec::contains_pattern(search))
                .push(" ESCAPE '\\'");
        }
        if let Some(legacy) = filter.legacy {
            q.push(" AND k.legacy = ").int(bool_int(legacy));
        }
        if let Some(identity) = &filter.identity {
            q.push(" AND k.identity_id = ").text(identity);
        }
        if let Some(after) = &page.after {
            q.after("k.created_at", "k.id", &Cursor::parse(after)?);
        }
        q.push(" ORDER BY k.created_at DESC, k.id DESC LIMIT ")
            .int(limit + 1);
        let keys = q
            .query(self.backend)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?
            .iter()
            .map(codec::key_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(codec::into_page(keys, limit, |key| Cursor {
            at: millis(key.created_at),
            id: key.id.clone(),
        }))
    }

    async fn save_key(
        &self,
        key: &ApiKey,
        secrets: &SecretChange,
        single_active: bool,
        audit: &AuditEntry,
    ) -> StoreResult<ApiKey> {
        let mut tx = self.begin_write().await?;
        let single_active = single_active
            || one_active_key_policy(&mut tx, self.backend, &key.workspace_id).await?;
        check_identity(&mut tx, self.backend, key).await?;
        let c = KeyColumns::encode(key, single_active)?;
        // `last_used_at` is not written: `touch_keys` owns it, and the caller's copy may be
        // older than what a verification recorded since it was read.
        let saved = sqlx::query(
            "UPDATE api_keys SET name = $4, name_lower = $5, description = $6, \
             environment = $7, scope_all = $8, scope = $9, permissions = $10, \
             expires_at = $11, status = $12, metadata = $13, limits = $14, \
             routing_rule_id = $15, display = $16, legacy = $17, updated_at = $18, \
             active_slot = $19, identity_id = $20, version = version + 1 \
             WHERE id = $1 AND workspace_id = $2 AND version = $3",
        )
        .bind(key.id.as_str())
        .bind(key.workspace_id.as_str())
        .bind(key.version)
        .bind(c.name)
        .bind(c.name_lower)
        .bind(c.description)
        .bind(c.environment)
        .bind(c.scope_all)
        .bind(c.scope)
        .bind(c.permissions)
        .bind(c.expires_at)
        .bind(c.status)
        .bind(c.metadata)
        .bind(c.limits)
        .bind(c.routing_rule_id)
        .bind(c.display)
        .bind(c.legacy)
        .bind(c.updated_at)
        .bind(c.active_slot)
        .bind(c.identity_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if saved.rows_affected() == 0 {
            let exists =
                sqlx::query("SELECT 1 AS one FROM api_keys WHERE id = $1 AND workspace_id = $2")
                    .bind(key.id.as_str())
                    .bind(key.workspace_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
            return Err(if exists.is_some() {
                StoreError::VersionConflict
            } else {
                StoreError::NotFound
            });
        }
        write_scopes(&mut tx, key, false).await?;
        match secrets {
            SecretChange::None => {}
            SecretChange::Replace(hash) => {
                sqlx::query("DELETE FROM key_secrets WHERE key_id = $1")
                    .bind(key.id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                insert_secret(&mut tx, key, hash, None, key.updated_at).await?;
            }
            SecretChange::Rotate { new, old_until } => {
                let until = millis(*old_until);
                // Capped, never extended: a secret already dying sooner keeps its own end.
                sqlx::query(
                    "UPDATE key_secrets SET expires_at = $2 \
                     WHERE key_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(key.id.as_str())
                .bind(until)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                insert_secret(&mut tx, key, new, None, key.updated_at).await?;
            }
            SecretChange::EndRetiring { at } => {
                sqlx::query(
                    "UPDATE key_secrets SET expires_at = $2 \
                     WHERE key_id = $1 AND expires_at IS NOT NULL AND expires_at > $2",
                )
                .bind(key.id.as_str())
                .bind(millis(*at))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            }
        }
        insert_audit(&mut tx, audit).await?;
        let saved = fetch_key(&mut tx, &key.workspace_id, &key.id).await?;
        commit(tx).await?;
        Ok(saved)
    }

    async fn delete_key(
        &self,
        workspace_id: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        // Secrets and scope rows go with it (ON DELETE CASCADE).
        let deleted = sqlx::query("DELETE FROM api_keys WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    async fn keys_by_hash(&self, hash: &KeyHash) -> StoreResult<Vec<KeyMatch>> {
        // One probe of key_secrets_hash_idx (one row for a native key) and one primary-key
        // probe on api_keys per row.
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS}, s.expires_at AS secret_expires_at \
             FROM key_secrets s JOIN api_keys k ON k.id = s.key_id WHERE s.hash = $1"
        ))
        .bind(hash_bytes(hash))
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(KeyMatch {
                    key: codec::key_from_row(row)?,
                    secret_expires_at: codec::secret_expiry_from_row(row)?,
                })
            })
            .collect()
    }

    async fn has_legacy_keys(&self, workspace_id: &str) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM api_keys WHERE workspace_id = $1 AND legacy = 1 LIMIT 1",
        )
        .bind(workspace_id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?;
        Ok(row.is_some())
    }

    async fn touch_keys(&self, used: &[(String, DateTime<Utc>)]) -> StoreResult<()> {
        // The latest use per key, sorted by id: one row per key in the join below, and the
        // same lock order for every node flushing at once.
        let mut latest = std::collections::BTreeMap::<&str, i64>::new();
        for (id, at) in used {
            let at = millis(*at);
            latest
                .entry(id.as_str())
                .and_modify(|t| *t = (*t).max(at))
                .or_insert(at);
        }
        let latest: Vec<(&str, i64)> = latest.into_iter().collect();
        for chunk in latest.chunks(TOUCH_CHUNK) {
            let mut q =
                DynamicQuery::new("UPDATE api_keys SET last_used_at = v.column2 FROM (VALUES ");
            for (i, (id, at)) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" })
                    .text(id)
                    .push(", ")
                    .int(*at)
                    .push(")");
            }
            q.push(
                ") AS v WHERE api_keys.id = v.column1 \
                 AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < v.column2)",
            );
            // One statement, no explicit transaction: a touch is best-effort bookkeeping
            // and must not hold locks for long. PostgreSQL may still pick a deadlock victim
            // when two nodes flush overlapping keys; the statement is idempotent, so retry.
            let mut attempt = 0;
            loop {
                match q.query(self.backend).execute(&self.write).await {
                    Ok(_) => break,
                    Err(e) if is_transient(&e) && attempt < 3 => attempt += 1,
                    Err(e) => return Err(db_error(e)),
                }
            }
        }
        Ok(())
    }

    // --- idempotency ------------------------------------------------------------------------

    async fn idempotency_begin(
        &self,
        claim: &IdempotencyClaim,
        stale_after: chrono::Duration,
    ) -> StoreResult<IdempotencyBegin> {
        let now = millis(claim.now);
        let stale_before = now.saturating_sub(stale_after.num_milliseconds());
        // Each step is one atomic statement; a race with another claimant just sends us
        // round again to read what it left. Bounded so a pathological race cannot spin.
        for _ in 0..4 {
            let inserted = sqlx::query(
                "INSERT INTO idempotency (scope, idem_key, fingerprint, status, body, created_at) \
                 VALUES ($1, $2, $3, NULL, NULL, $4) ON CONFLICT (scope, idem_key) DO NOTHING",
            )
            .bind(claim.scope.as_str())
            .bind(claim.key.as_str())
            .bind(claim.fingerprint.to_vec())
            .bind(now)
            .execute(&self.write)
            .await
            .map_err(db_error)?;
            if inserted.rows_affected() == 1 {
                return Ok(IdempotencyBegin::Claimed);
            }
            let Some(row) = sqlx::query(
                "SELECT fingerprint, status, body, created_at FROM idempotency \
                 WHERE scope = $1 AND idem_key = $2",
            )
            .bind(claim.scope.as_str())
            .bind(claim.key.as_str())
            .fetch_optional(&self.write)
            .await
            .map_err(db_error)?
            else {
                continue; // abandoned or purged in between: claim again
            };
            let fingerprint: Vec<u8> = row.try_get("fingerprint").map_err(db_error)?;
            if fingerprint != claim.fingerprint {
                return Ok(IdempotencyBegin::Mismatch);
            }
            let status: Option<i64> = row.try_get("status").map_err(db_error)?;
            if let Some(status) = status {
                let body: Option<Vec<u8>> = row.try_get("body").map_err(db_error)?;
                return Ok(IdempotencyBegin::Replay {
                    status: u16::try_from(status).map_err(|_| {
                        StoreError::Corrupt(format!("idempotent status {status} out of range"))
                    })?,
                    body: body.unwrap_or_default(),
                });
            }
            let created_at: i64 = row.try_get("created_at").map_err(db_error)?;
            if created_at > stale_before {
                return Ok(IdempotencyBegin::InProgress);
            }
            // The claimant died: take over, unless someone else took over first.
            let taken = sqlx::query(
                "UPDATE idempotency SET created_at = $3 WHERE scope = $1 AND idem_key = $2 \
                 AND status IS NULL AND created_at = $4",
            )
            .bind(claim.scope.as_str())
            .bind(claim.key.as_str())
            .bind(now)
            .bind(created_at)
            .execute(&self.write)
            .await
            .map_err(db_error)?;
            if taken.rows_affected() == 1 {
                return Ok(IdempotencyBegin::Claimed);
            }
        }
        Ok(IdempotencyBegin::InProgress)
    }

    async fn idempotency_finish(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE idempotency SET status = $3, body = $4 WHERE scope = $1 AND idem_key = $2",
        )
        .bind(scope)
        .bind(key)
        .bind(i64::from(status))
        .bind(body.to_vec())
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()> {
        // Only an unfinished claim: a recorded response must keep replaying.
        sqlx::query(
            "DELETE FROM idempotency WHERE scope = $1 AND idem_key = $2 AND status IS NULL",
        )
        .bind(scope)
        .bind(key)
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
            .bind(millis(before))
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    // --- usage and request log ------------------------------------------------------------

    async fn record_usage(&self, batch: &crate::UsageBatch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Rows in primary-key order: two nodes flushing overlapping counters lock them in the
        // same order. PostgreSQL may still pick a deadlock victim; the transaction is all or
        // nothing, so run it again.
        let mut rollups: Vec<&crate::UsageRollup> = batch.rollups.iter().collect();
        rollups.sort_by_key(|r| {
            let r: &crate::UsageRollup = r;
            (
                r.workspace_id.as_str(),
                r.key_id.as_str(),
                r.day,
                r.operation.as_str(),
                r.project.as_deref(),
                r.outcome.as_str(),
            )
        });
        let mut failures: Vec<&crate::AuthFailure> = batch.auth_failures.iter().collect();
        failures.sort_by_key(|f| {
            let f: &crate::AuthFailure = f;
            (
                f.workspace_id.as_str(),
                f.hour,
                f.key_display.as_str(),
                f.source_ip.as_deref(),
                f.code.as_str(),
            )
        });
        let mut statements = rollup_upserts(&rollups);
        statements.extend(auth_failure_upserts(&failures));
        let segments = codec::request_log_segments(&batch.requests);
        let mut attempt = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let mut result = Ok(());
            for statement in &statements {
                if let Err(e) = statement.query(self.backend).execute(&mut *tx).await {
                    result = Err(e);
                    break;
                }
            }
            if result.is_ok() {
                for segment in &segments {
                    // A batch retried after a lost acknowledgement makes the same segments.
                    let inserted = sqlx::query(
                        "INSERT INTO request_log_segments (first_request_id, last_request_id, \
                         first_at, last_at, entries, data) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (first_request_id, last_request_id) DO NOTHING",
                    )
                    .bind(segment.first_request_id.as_str())
                    .bind(segment.last_request_id.as_str())
                    .bind(segment.first_at)
                    .bind(segment.last_at)
                    .bind(segment.entries)
                    .bind(segment.data.as_slice())
                    .execute(&mut *tx)
                    .await;
                    if let Err(e) = inserted {
                        result = Err(e);
                        break;
                    }
                }
            }
            let result = match result {
                Ok(()) => tx.commit().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if is_transient(&e) && attempt < 3 => attempt += 1,
                Err(e) => return Err(db_error(e)),
            }
        }
    }

    async fn usage_rollups(
        &self,
        workspace_id: &str,
        query: &crate::UsageQuery,
    ) -> StoreResult<Vec<crate::UsageRollup>> {
        let mut q = DynamicQuery::new(&format!(
            "SELECT {} FROM usage_rollups WHERE workspace_id = ",
            codec::ROLLUP_COLUMNS
        ));
        q.text(workspace_id);
        usage_conditions(&mut q, query);
        q.push(" ORDER BY day, key_id, operation, project, outcome");
        q.query(self.backend)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?
            .iter()
            .map(codec::rollup_from_row)
            .collect()
    }

    async fn usage_totals(
        &self,
        workspace_id: &str,
        query: &crate::UsageQuery,
        dimension: crate::UsageDimension,
    ) -> StoreResult<Vec<crate::UsageTotal>> {
        // A fixed column per dimension; nothing from the request reaches the SQL text.
        let column = match dimension {
            crate::UsageDimension::Key => "key_id",
            // '' for none, as the other dimensions store it.
            crate::UsageDimension::Identity => {
                "COALESCE((SELECT k.identity_id FROM api_keys k \
                 WHERE k.id = usage_rollups.key_id), '')"
            }
            crate::UsageDimension::Project => "project",
            crate::UsageDimension::Operation => "operation",
            crate::UsageDimension::Day => "day",
        };
        // Each sum in two parts that cannot overflow (counters may be at i64::MAX), put back
        // together saturating; cast because PostgreSQL sums BIGINT into NUMERIC, which the
        // Any driver cannot read as i64.
        let mut q = DynamicQuery::new(&format!(
            "SELECT {column} AS grp, outcome, {}, {}, {} FROM usage_rollups WHERE workspace_id = ",
            codec::split_sum("requests", "requests"),
            codec::split_sum("tokens", "tokens"),
            codec::split_sum("cost_micros", "cost_micros"),
        ));
        q.text(workspace_id);
        usage_conditions(&mut q, query);
        q.push(" GROUP BY grp, outcome ORDER BY grp, outcome");
        q.query(self.backend)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?
            .iter()
            .map(codec::total_from_row)
            .collect()
    }

    async fn request_log_entry(
        &self,
        workspace_id: &str,
        request_id: &str,
    ) -> StoreResult<Option<crate::RequestLogEntry>> {
        // The segments whose id range covers the id; a time-ordered id also bounds how old
        // their first id can be, so this reads about one segment per node.
        let floor = ids::request_id_millis(request_id)
            .map(|t| ids::request_id_floor(t.saturating_sub(codec::SEGMENT_SPAN_MILLIS)))
            .unwrap_or_default();
        let segments = sqlx::query(
            "SELECT data FROM request_log_segments WHERE first_request_id >= $1 \
             AND first_request_id <= $2 AND last_request_id >= $3",
        )
        .bind(floor.as_str())
        .bind(request_id)
        .bind(request_id)
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        for row in &segments {
            let data: Vec<u8> = row
                .try_get("data")
                .map_err(|e| StoreError::Corrupt(format!("column data: {e}")))?;
            if let Some(entry) = codec::find_in_segment(&data, workspace_id, request_id)? {
                return Ok(Some(entry));
            }
        }
        // Rows written one per request before the log was kept in segments.
        sqlx::query(&format!(
            "SELECT {} FROM request_log WHERE request_id = $1 AND workspace_id = $2",
            codec::REQUEST_LOG_COLUMNS
        ))
        .bind(request_id)
        .bind(workspace_id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?
        .map(|row| codec::request_from_row(&row))
        .transpose()
    }

    async fn purge_request_log(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        // In slices, so SQLite's one writer is never held for long by a big purge. Whole
        // segments go once their last entry is past retention.
        let mut purged = 0;
        loop {
            let rows = sqlx::query(
                "DELETE FROM request_log_segments WHERE last_at < $1 AND first_request_id IN \
                 (SELECT first_request_id FROM request_log_segments WHERE last_at < $2 LIMIT $3) \
                 RETURNING entries",
            )
            .bind(millis(before))
            .bind(millis(before))
            .bind(PURGE_SLICE_SEGMENTS)
            .fetch_all(&self.write)
            .await
            .map_err(db_error)?;
            for row in &rows {
                let entries: i64 = row
                    .try_get("entries")
                    .map_err(|e| StoreError::Corrupt(format!("column entries: {e}")))?;
                purged += u64::try_from(entries).unwrap_or(0);
            }
            if rows.len() < PURGE_SLICE_SEGMENTS as usize {
                break;
            }
        }
        // Rows written one per request before the log was kept in segments.
        loop {
            let done = sqlx::query(
                "DELETE FROM request_log WHERE request_id IN \
                 (SELECT request_id FROM request_log WHERE at < $1 LIMIT $2)",
            )
            .bind(millis(before))
            .bind(PURGE_SLICE)
            .execute(&self.write)
            .await
            .map_err(db_error)?;
            purged += done.rows_affected();
            if done.rows_affected() < PURGE_SLICE as u64 {
                return Ok(purged);
            }
        }
    }

    async fn list_auth_failures(
        &self,
        workspace_id: &str,
        filter: &crate::AuthFailureFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<crate::AuthFailure>> {
        let limit = codec::clamp_limit(page.limit);
        let mut q = DynamicQuery::new(&format!(
            "SELECT {} FROM auth_failures WHERE workspace_id = ",
            codec::AUTH_FAILURE_COLUMNS
        ));
        q.text(workspace_id);
        if let Some(since) = filter.since {
            q.push(" AND first_seen >= ").int(millis(since));
        }
        if let Some(until) = filter.until {
            q.push(" AND first_seen <= ").int(millis(until));
        }
        if let Some(code) = &filter.code {
            q.push(" AND code = ").text(code);
        }
        if let Some(after) = &page.after {
            q.after("first_seen", "id", &Cursor::parse(after)?);
        }
        q.push(" ORDER BY first_seen DESC, id DESC LIMIT ")
            .int(limit + 1);
        let items = q
            .query(self.backend)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?
            .iter()
            .map(codec::auth_failure_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(codec::into_page(items, limit, |f| Cursor {
            at: millis(f.first_seen),
            id: f.id.clone(),
        }))
    }

    async fn purge_auth_failures(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM auth_failures WHERE hour < $1")
            .bind(millis(before))
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    // --- audit ------------------------------------------------------------------------------

    async fn list_audit(
        &self,
        workspace_id: &str,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        let limit = codec::clamp_limit(page.limit);
        let mut q = DynamicQuery::new(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE workspace_id = "
        ));
        q.text(workspace_id);
        if let Some(target_id) = &filter.target_id {
            q.push(" AND target_id = ").text(target_id);
        }
        if let Some(actor) = &filter.actor {
            q.push(" AND actor = ").text(actor);
        }
        if let Some(action) = &filter.action {
            q.push(" AND action = ").text(action);
        }
        if let Some(since) = filter.since {
            q.push(" AND at >= ").int(millis(since));
        }
        if let Some(until) = filter.until {
            q.push(" AND at <= ").int(millis(until));
        }
        if let Some(after) = &page.after {
            q.after("at", "id", &Cursor::parse(after)?);
        }
        q.push(" ORDER BY at DESC, id DESC LIMIT ").int(limit + 1);
        let entries = q
            .query(self.backend)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?
            .iter()
            .map(codec::audit_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(codec::into_page(entries, limit, |entry| Cursor {
            at: millis(entry.at),
            id: entry.id.clone(),
        }))
    }

    // --- routing rules ----------------------------------------------------------------------

    async fn create_routing_rule(&self, rule: &RoutingRule, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        if rule.is_default {
            clear_default_rule(&mut tx, &rule.workspace_id, &rule.id).await?;
        }
        sqlx::query(&format!(
            "INSERT INTO routing_rules ({ROUTING_RULE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(rule.id.as_str())
        .bind(rule.workspace_id.as_str())
        .bind(rule.name.as_str())
        .bind(bool_int(rule.is_default))
        .bind(codec::to_json(rule)?)
        .bind(millis(rule.created_at))
        .bind(millis(rule.updated_at))
        .bind(rule.version)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    async fn routing_rule(&self, workspace_id: &str, id: &str) -> StoreResult<RoutingRule> {
        self.one_in_workspace(
            "routing_rules",
            ROUTING_RULE_COLUMNS,
            workspace_id,
            id,
            routing_rule_from_row,
        )
        .await
    }

    async fn list_routing_rules(&self, workspace_id: &str) -> StoreResult<Vec<RoutingRule>> {
        self.all_in_workspace(
            "routing_rules",
            ROUTING_RULE_COLUMNS,
            workspace_id,
            routing_rule_from_row,
        )
        .await
    }

    async fn default_routing_rule(&self, workspace_id: &str) -> StoreResult<Option<RoutingRule>> {
        sqlx::query(&format!(
            "SELECT {ROUTING_RULE_COLUMNS} FROM routing_rules \
             WHERE workspace_id = $1 AND is_default = 1"
        ))
        .bind(workspace_id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?
        .map(|row| routing_rule_from_row(&row))
        .transpose()
    }

    async fn save_routing_rule(
        &self,
        rule: &RoutingRule,
        audit: &AuditEntry,
    ) -> StoreResult<RoutingRule> {
        let mut tx = self.begin_write().await?;
        if rule.is_default {
            clear_default_rule(&mut tx, &rule.workspace_id, &rule.id).await?;
        }
        let mut saved = rule.clone();
        saved.version = rule.version + 1;
        let done = sqlx::query(
            "UPDATE routing_rules SET name = $4, is_default = $5, body = $6, updated_at = $7, \
             version = $8 WHERE id = $1 AND workspace_id = $2 AND version = $3",
        )
        .bind(rule.id.as_str())
        .bind(rule.workspace_id.as_str())
        .bind(rule.version)
        .bind(rule.name.as_str())
        .bind(bool_int(rule.is_default))
        .bind(codec::to_json(&saved)?)
        .bind(millis(rule.updated_at))
        .bind(saved.version)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            let exists = sqlx::query(
                "SELECT 1 AS one FROM routing_rules WHERE id = $1 AND workspace_id = $2",
            )
            .bind(rule.id.as_str())
            .bind(rule.workspace_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            return Err(if exists.is_some() {
                StoreError::VersionConflict
            } else {
                StoreError::NotFound
            });
        }
        insert_audit(&mut tx, audit).await?;
        commit(tx).await?;
        Ok(saved)
    }

    async fn delete_routing_rule(
        &self,
        workspace_id: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM routing_rules WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let keys = sqlx::query(
            "SELECT id FROM api_keys WHERE workspace_id = $1 AND routing_rule_id = $2 ORDER BY id",
        )
        .bind(workspace_id)
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| row.try_get::<String, _>("id").map_err(db_error))
        .collect::<StoreResult<Vec<_>>>()?;
        sqlx::query(
            "UPDATE api_keys SET routing_rule_id = NULL, version = version + 1 \
             WHERE workspace_id = $1 AND routing_rule_id = $2",
        )
        .bind(workspace_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_audit(&mut tx, audit).await?;
        commit(tx).await?;
        Ok(keys)
    }
}

const ROUTING_RULE_COLUMNS: &str =
    "id, workspace_id, name, is_default, body, created_at, updated_at, version";

/// A rule is its JSON body; the default flag and version are read from their columns, which
/// are authoritative (a new default clears the flag of the old one by column only).
fn routing_rule_from_row(row: &sqlx::any::AnyRow) -> StoreResult<RoutingRule> {
    let corrupt = |e: sqlx::Error| StoreError::Corrupt(format!("routing rule: {e}"));
    let body: String = row.try_get("body").map_err(corrupt)?;
    let mut rule: RoutingRule = serde_json::from_str(&body)
        .map_err(|e| StoreError::Corrupt(format!("routing rule body is not valid: {e}")))?;
    rule.is_default = row.try_get::<i64, _>("is_default").map_err(corrupt)? != 0;
    rule.version = row.try_get("version").map_err(corrupt)?;
    Ok(rule)
}

/// Takes the default flag from every other rule of the workspace (there is at most one).
async fn clear_default_rule(
    conn: &mut AnyConnection,
    workspace_id: &str,
    keep: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE routing_rules SET is_default = 0, version = version + 1 \
         WHERE workspace_id = $1 AND is_default = 1 AND id <> $2",
    )
    .bind(workspace_id)
    .bind(keep)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

// --- usage and request log ----------------------------------------------------------------

/// Rows per multi-row upsert (9 values each). Kept small on purpose: sqlx's SQLite driver asks
/// SQLite for every parameter's name when binding, and SQLite finds a name by a linear scan,
/// so binding costs grow with the square of the parameters per statement (at 500 rows of 11
/// values this was most of the server's CPU). 50 rows still make few statements per flush,
/// and the full chunks share one statement text, so they stay prepared.
const USAGE_ROWS_PER_STATEMENT: usize = 50;
/// Old request-log rows deleted per statement when purging.
const PURGE_SLICE: i64 = 5000;
/// Request-log segments deleted per statement when purging.
const PURGE_SLICE_SEGMENTS: i64 = 50;

fn usage_conditions(q: &mut DynamicQuery, query: &crate::UsageQuery) {
    if let Some(key_id) = &query.key_id {
        q.push(" AND key_id = ").text(key_id);
    }
    if let Some(identity_id) = &query.identity_id {
        q.push(" AND key_id IN (SELECT k.id FROM api_keys k WHERE k.identity_id = ")
            .text(identity_id)
            .push(")");
    }
    q.push(" AND day >= ")
        .text(&codec::day_text(query.from))
        .push(" AND day <= ")
        .text(&codec::day_text(query.to));
}

/// `column = table.column + excluded.column` for an upsert, saturating at `i64::MAX` on both
/// backends. The bound is checked before adding: SQLite turns an overflowing integer sum into
/// a float (so `MIN(a + b, max)` would store a float), and PostgreSQL raises an error. The
/// amounts added are never negative; a negative one is added as it is (it cannot overflow a
/// non-negative counter).
fn saturating_add(table: &str, column: &str) -> String {
    const MAX: i64 = i64::MAX;
    format!(
        "{column} = CASE WHEN excluded.{column} <= 0 THEN {table}.{column} + excluded.{column} \
         WHEN {table}.{column} > {MAX} - excluded.{column} THEN {MAX} \
         ELSE {table}.{column} + excluded.{column} END"
    )
}

fn rollup_upserts(rollups: &[&crate::UsageRollup]) -> Vec<DynamicQuery> {
    rollups
        .chunks(USAGE_ROWS_PER_STATEMENT)
        .map(|chunk| {
            let mut q = DynamicQuery::new(&format!(
                "INSERT INTO usage_rollups ({}) VALUES ",
                codec::ROLLUP_COLUMNS
            ));
            for (i, r) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" })
                    .text(&r.workspace_id)
                    .push(", ")
                    .text(&r.key_id)
                    .push(", ")
                    .text(&codec::day_text(r.day))
                    .push(", ")
                    .text(&r.operation)
                    .push(", ")
                    .text(r.project.as_deref().unwrap_or(""))
                    .push(", ")
                    .text(&r.outcome)
                    .push(", ")
                    .int(codec::count(r.requests))
                    .push(", ")
                    .int(codec::count(r.tokens))
                    .push(", ")
                    .int(r.cost.0)
                    .push(")");
            }
            q.push(&format!(
                " ON CONFLICT (workspace_id, key_id, day, operation, project, outcome) \
                 DO UPDATE SET {}, {}, {}",
                saturating_add("usage_rollups", "requests"),
                saturating_add("usage_rollups", "tokens"),
                saturating_add("usage_rollups", "cost_micros"),
            ));
            q
        })
        .collect()
}

fn auth_failure_upserts(failures: &[&crate::AuthFailure]) -> Vec<DynamicQuery> {
    failures
        .chunks(USAGE_ROWS_PER_STATEMENT)
        .map(|chunk| {
            let mut q = DynamicQuery::new(&format!(
                "INSERT INTO auth_failures ({}) VALUES ",
                codec::AUTH_FAILURE_COLUMNS
            ));
            for (i, f) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" })
                    .text(&f.id)
                    .push(", ")
                    .text(&f.workspace_id)
                    .push(", ")
                    .int(millis(f.hour))
                    .push(", ")
                    .text(&f.key_display)
                    .push(", ")
                    .text(f.source_ip.as_deref().unwrap_or(""))
                    .push(", ")
                    .text(&f.code)
                    .push(", ")
                    .int(codec::count(f.attempts))
                    .push(", ")
                    .int(millis(f.first_seen))
                    .push(", ")
                    .int(millis(f.last_seen))
                    .push(")");
            }
            // CASE rather than MIN/MAX: SQLite's two-argument max() is GREATEST on PostgreSQL.
            q.push(&format!(
                " ON CONFLICT (workspace_id, hour, key_display, source_ip, code) \
                 DO UPDATE SET {}, \
                 first_seen = CASE WHEN excluded.first_seen < auth_failures.first_seen \
                 THEN excluded.first_seen ELSE auth_failures.first_seen END, \
                 last_seen = CASE WHEN excluded.last_seen > auth_failures.last_seen \
                 THEN excluded.last_seen ELSE auth_failures.last_seen END",
                saturating_add("auth_failures", "attempts"),
            ));
            q
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_name_what_collided_on_both_backends() {
        for (what, kind) in [
            ("api_keys_active_slot_uq", ConflictKind::ActiveKey),
            (
                "UNIQUE constraint failed: api_keys.workspace_id, api_keys.active_slot",
                ConflictKind::ActiveKey,
            ),
            ("api_keys_name_uq", ConflictKind::Name),
            (
                "UNIQUE constraint failed: api_keys.workspace_id, api_keys.name",
                ConflictKind::Name,
            ),
            ("projects_name_uq", ConflictKind::Name),
            (
                "UNIQUE constraint failed: projects.workspace_id, projects.name",
                ConflictKind::Name,
            ),
            ("api_keys_pkey", ConflictKind::Id),
            ("UNIQUE constraint failed: api_keys.id", ConflictKind::Id),
            ("members_token_hash_uq", ConflictKind::Id),
            ("key_secrets_pkey", ConflictKind::Id),
            (
                "UNIQUE constraint failed: key_secrets.workspace_id, key_secrets.hash",
                ConflictKind::Id,
            ),
        ] {
            assert_eq!(conflict_kind(what), kind, "{what}");
        }
    }
}
