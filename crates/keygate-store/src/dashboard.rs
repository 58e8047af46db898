//! The web dashboard's sign-in state: the [`DashboardStore`] half of the store.
//!
//! Sessions are rows (so every node of a cluster accepts them) keyed by a keyed hash of the
//! session id; one-time sign-in links likewise by a hash of their secret. The server computes
//! the hashes: nothing here ever sees a secret. Both cascade from `members`, so deleting a
//! member ends their sessions in the same transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::codec::{get, get_time, millis};
use crate::sql::{commit, db_error, insert_audit, SqlStore};
use crate::{AuditEntry, StoreResult};

/// A signed-in member's session, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    /// Keyed hash of the session id (the cookie's value); the id itself is never stored.
    pub id_hash: String,
    pub workspace_id: String,
    pub member_id: String,
    /// The per-session token every state-changing form carries.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The absolute end of the session, however active it is.
    pub expires_at: DateTime<Utc>,
}

/// A one-time sign-in link, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInLink {
    /// Keyed hash of the link's secret.
    pub secret_hash: String,
    pub workspace_id: String,
    pub member_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// What redeeming a link found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRedemption {
    /// The link was valid and is now used: sign this member in.
    Redeemed(SignInLink),
    /// No such link.
    Unknown,
    /// Used before (the link as it was).
    AlreadyUsed(SignInLink),
    Expired(SignInLink),
}

#[async_trait]
pub trait DashboardStore: Send + Sync {
    async fn create_sign_in_link(&self, link: &SignInLink) -> StoreResult<()>;
    /// The link with this hash, without using it.
    async fn sign_in_link(&self, secret_hash: &str) -> StoreResult<Option<SignInLink>>;
    /// Marks the link used if it is neither used nor expired at `now`, in one transaction:
    /// of two concurrent redemptions, one wins.
    async fn redeem_sign_in_link(
        &self,
        secret_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<LinkRedemption>;
    async fn create_session(&self, session: &DashboardSession) -> StoreResult<()>;
    async fn session(&self, id_hash: &str) -> StoreResult<Option<DashboardSession>>;
    /// Records activity (for the idle timeout).
    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> StoreResult<()>;
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Deletes sessions and links that ended before `now`; returns how many rows went.
    async fn purge_dashboard(
        &self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// An audit row that records no change of its own (a sign-in, a refused sign-in).
    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
}

const SESSION_COLUMNS: &str =
    "id_hash, workspace_id, member_id, csrf_token, created_at, last_seen_at, expires_at";
const LINK_COLUMNS: &str = "secret_hash, workspace_id, member_id, created_at, expires_at, used_at";

fn session_from_row(row: &sqlx::any::AnyRow) -> StoreResult<DashboardSession> {
    Ok(DashboardSession {
        id_hash: get(row, "id_hash")?,
        workspace_id: get(row, "workspace_id")?,
        member_id: get(row, "member_id")?,
        csrf_token: get(row, "csrf_token")?,
        created_at: get_time(row, "created_at")?,
        last_seen_at: get_time(row, "last_seen_at")?,
        expires_at: get_time(row, "expires_at")?,
    })
}

fn link_from_row(row: &sqlx::any::AnyRow) -> StoreResult<SignInLink> {
    let used_at: Option<i64> = get(row, "used_at")?;
    Ok(SignInLink {
        secret_hash: get(row, "secret_hash")?,
        workspace_id: get(row, "workspace_id")?,
        member_id: get(row, "member_id")?,
        created_at: get_time(row, "created_at")?,
        expires_at: get_time(row, "expires_at")?,
        used_at: used_at.and_then(DateTime::from_timestamp_millis),
    })
}

#[async_trait]
impl DashboardStore for SqlStore {
    async fn create_sign_in_link(&self, link: &SignInLink) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO sign_in_links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(link.secret_hash.as_str())
        .bind(link.workspace_id.as_str())
        .bind(link.member_id.as_str())
        .bind(millis(link.created_at))
        .bind(millis(link.expires_at))
        .bind(link.used_at.map(millis))
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn sign_in_link(&self, secret_hash: &str) -> StoreResult<Option<SignInLink>> {
        sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM sign_in_links WHERE secret_hash = $1"
        ))
        .bind(secret_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(link_from_row)
        .transpose()
    }

    async fn redeem_sign_in_link(
        &self,
        secret_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<LinkRedemption> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM sign_in_links WHERE secret_hash = $1"
        ))
        .bind(secret_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?
        else {
            return Ok(LinkRedemption::Unknown);
        };
        let link = link_from_row(&row)?;
        if link.used_at.is_some() {
            return Ok(LinkRedemption::AlreadyUsed(link));
        }
        if link.expires_at <= now {
            return Ok(LinkRedemption::Expired(link));
        }
        // The condition on `used_at` makes the second of two racing redemptions change
        // nothing (PostgreSQL re-checks it after waiting for the first's row lock).
        let used = sqlx::query(
            "UPDATE sign_in_links SET used_at = $2 WHERE secret_hash = $1 AND used_at IS NULL",
        )
        .bind(secret_hash)
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if used.rows_affected() == 0 {
            return Ok(LinkRedemption::AlreadyUsed(link));
        }
        commit(tx).await?;
        Ok(LinkRedemption::Redeemed(SignInLink {
            used_at: Some(now),
            ..link
        }))
    }

    async fn create_session(&self, session: &DashboardSession) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO dashboard_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(session.id_hash.as_str())
        .bind(session.workspace_id.as_str())
        .bind(session.member_id.as_str())
        .bind(session.csrf_token.as_str())
        .bind(millis(session.created_at))
        .bind(millis(session.last_seen_at))
        .bind(millis(session.expires_at))
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> StoreResult<Option<DashboardSession>> {
        // Joined with `members`: a session of a deleted member is never returned, even if a
        // backend without enforced foreign keys kept its row.
        sqlx::query(&format!(
            "SELECT {} FROM dashboard_sessions s JOIN members m ON m.id = s.member_id \
             WHERE s.id_hash = $1",
            SESSION_COLUMNS
                .split(", ")
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(id_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE dashboard_sessions SET last_seen_at = $2 WHERE id_hash = $1")
            .bind(id_hash)
            .bind(millis(at))
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn purge_dashboard(
        &self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let sessions = sqlx::query(
            "DELETE FROM dashboard_sessions WHERE expires_at <= $1 OR last_seen_at < $2",
        )
        .bind(millis(now))
        .bind(millis(idle_before))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let links = sqlx::query("DELETE FROM sign_in_links WHERE expires_at <= $1")
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        commit(tx).await?;
        Ok(sessions.rows_affected() + links.rows_affected())
    }

    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_audit(&mut tx, entry).await?;
        commit(tx).await
    }
}
