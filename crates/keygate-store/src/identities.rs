//! Identities, the customers who hold keys: the [`IdentityStore`] half of the store.
//!
//! A key names its identity in `api_keys.identity_id`. There is no foreign key (SQLite cannot
//! add one to an existing table), so the two ends are kept consistent by locking instead:
//! saving a key that names an identity reads the identity row in the key's transaction
//! (`FOR SHARE` on PostgreSQL; SQLite serialises writers), and deleting an identity locks its
//! row (`FOR UPDATE`) before it counts the keys that still name it. Whichever transaction
//! comes second sees the first's outcome: a key never names a deleted identity.

use async_trait::async_trait;
use keygate_core::model::Identity;
use sqlx::AnyConnection;

use crate::codec::{self, get, get_json, get_time, millis, to_json, Cursor, DynamicQuery};
use crate::sql::{commit, db_error, insert_audit, Backend, SqlStore};
use crate::{AuditEntry, ConflictKind, Page, PageRequest, StoreError, StoreResult};

#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// `Conflict(ExternalId)` when the workspace already has an identity with its external id.
    async fn create_identity(&self, identity: &Identity, audit: &AuditEntry) -> StoreResult<()>;
    async fn identity(&self, workspace_id: &str, id: &str) -> StoreResult<Identity>;
    async fn identity_by_external_id(
        &self,
        workspace_id: &str,
        external_id: &str,
    ) -> StoreResult<Identity>;
    /// Newest first, a page at a time.
    async fn list_identities(
        &self,
        workspace_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Identity>>;
    /// Saves `identity` if its `version` is still the stored one; returns it as saved.
    async fn save_identity(&self, identity: &Identity, audit: &AuditEntry)
        -> StoreResult<Identity>;
    /// Deletes an identity no key names any more; `Conflict(InUse)` while one does.
    async fn delete_identity(
        &self,
        workspace_id: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
}

const COLUMNS: &str =
    "id, workspace_id, external_id, name, metadata, limits, created_at, updated_at, version";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<Identity> {
    Ok(Identity {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        external_id: get(row, "external_id")?,
        name: get(row, "name")?,
        metadata: get_json(row, "metadata")?,
        limits: get_json(row, "limits")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        version: get(row, "version")?,
    })
}

/// Whether the identity exists in the workspace, locking its row against deletion until the
/// caller's transaction ends. Called by the key writers for a key that names one.
pub(crate) async fn identity_exists(
    conn: &mut AnyConnection,
    backend: Backend,
    workspace_id: &str,
    identity_id: &str,
) -> StoreResult<bool> {
    let lock = match backend {
        Backend::Postgres => " FOR SHARE",
        Backend::Sqlite => "",
    };
    let row = sqlx::query(&format!(
        "SELECT 1 AS one FROM identities WHERE workspace_id = $1 AND id = $2{lock}"
    ))
    .bind(workspace_id)
    .bind(identity_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?;
    Ok(row.is_some())
}

#[async_trait]
impl IdentityStore for SqlStore {
    async fn create_identity(&self, identity: &Identity, audit: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO identities ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(identity.id.as_str())
        .bind(identity.workspace_id.as_str())
        .bind(identity.external_id.as_str())
        .bind(identity.name.as_deref())
        .bind(to_json(&identity.metadata)?)
        .bind(to_json(&identity.limits)?)
        .bind(millis(identity.created_at))
        .bind(millis(identity.updated_at))
        .bind(identity.version)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    async fn identity(&self, workspace_id: &str, id: &str) -> StoreResult<Identity> {
        self.one_in_workspace("identities", COLUMNS, workspace_id, id, from_row)
            .await
    }

    async fn identity_by_external_id(
        &self,
        workspace_id: &str,
        external_id: &str,
    ) -> StoreResult<Identity> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM identities WHERE workspace_id = $1 AND external_id = $2"
        ))
        .bind(workspace_id)
        .bind(external_id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    async fn list_identities(
        &self,
        workspace_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Identity>> {
        let limit = codec::clamp_limit(page.limit);
        let mut q = DynamicQuery::new(&format!(
            "SELECT {COLUMNS} FROM identities WHERE workspace_id = "
        ));
        q.text(workspace_id);
        if let Some(after) = &page.after {
            q.after("created_at", "id", &Cursor::parse(after)?);
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .int(limit + 1);
        let items = q
            .query(self.backend)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?
            .iter()
            .map(from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(codec::into_page(items, limit, |identity| Cursor {
            at: millis(identity.created_at),
            id: identity.id.clone(),
        }))
    }

    async fn save_identity(
        &self,
        identity: &Identity,
        audit: &AuditEntry,
    ) -> StoreResult<Identity> {
        let mut tx = self.begin_write().await?;
        let saved = sqlx::query(
            "UPDATE identities SET external_id = $4, name = $5, metadata = $6, limits = $7, \
             updated_at = $8, version = version + 1 \
             WHERE workspace_id = $1 AND id = $2 AND version = $3",
        )
        .bind(identity.workspace_id.as_str())
        .bind(identity.id.as_str())
        .bind(identity.version)
        .bind(identity.external_id.as_str())
        .bind(identity.name.as_deref())
        .bind(to_json(&identity.metadata)?)
        .bind(to_json(&identity.limits)?)
        .bind(millis(identity.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if saved.rows_affected() == 0 {
            let exists =
                identity_exists(&mut tx, self.backend, &identity.workspace_id, &identity.id)
                    .await?;
            return Err(if exists {
                StoreError::VersionConflict
            } else {
                StoreError::NotFound
            });
        }
        insert_audit(&mut tx, audit).await?;
        commit(tx).await?;
        Ok(Identity {
            version: identity.version + 1,
            ..identity.clone()
        })
    }

    async fn delete_identity(
        &self,
        workspace_id: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        sqlx::query(&format!(
            "SELECT 1 AS one FROM identities WHERE workspace_id = $1 AND id = $2{lock}"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound)?;
        let holder = sqlx::query(
            "SELECT 1 AS one FROM api_keys WHERE workspace_id = $1 AND identity_id = $2 LIMIT 1",
        )
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if holder.is_some() {
            return Err(StoreError::Conflict(ConflictKind::InUse));
        }
        sqlx::query("DELETE FROM identities WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }
}
