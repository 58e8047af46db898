//! Keygate's storage: one [`Store`] trait, SQLite and PostgreSQL behind it.
//!
//! The backend is chosen once at start from the database URL ([`connect`]) and lives in the
//! server state as `Arc<dyn Store>`. Every management change is written together with its
//! audit row in one transaction, so an acknowledged change always has its audit entry.
//! Keys are saved whole with an optimistic version check: the server applies a lifecycle
//! transition to an [`ApiKey`] (pure code in `keygate-core`) and the store persists it only if
//! nobody changed the key in between.
//!
//! Also decided here:
//!
//! * **One error type** ([`StoreError`]): `RowNotFound` and foreign-key misses become
//!   `NotFound`, unique violations a typed `Conflict`, everything else `Database` with the
//!   `sqlx::Error` as its source. A row of another workspace is `NotFound`, never "forbidden".
//! * **Usage is written in batches** ([`Store::record_usage`]): one all-or-nothing transaction
//!   per flush, so a retried flush never counts twice (`docs/design.md` §9).
//! * **Only hashes are stored** (`docs/design.md` §2); an SQLite file is created 0600.
//! * **One conformance suite** (`tests/conformance`) runs every scenario on SQLite and on
//!   PostgreSQL (those `#[ignore]`d: `scripts/test` runs them when PostgreSQL answers); the
//!   `test-support` feature shares its PostgreSQL test databases with the server's tests.

mod codec;
mod dashboard;
mod database_url;
mod error;
mod identities;
mod postgres;
mod sql;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;
mod types;
mod webhooks;

pub use dashboard::{DashboardSession, DashboardStore, LinkRedemption, SignInLink};
pub use error::{ConflictKind, StoreError, StoreResult};
pub use identities::IdentityStore;
pub use types::*;
pub use webhooks::{
    Attempt, Delivery, DeliveryState, DueDelivery, ExpiringKey, MarkedEvent, WebhookEndpoint,
    WebhookStore,
};

use std::path::PathBuf;
use std::sync::Arc;

use database_url::DatabaseUrl;
use sqlite::SqliteTarget;

/// Opens the store a database URL names and brings its schema up to date.
///
/// `sqlite://path`, `sqlite:path` or a bare path ending in `.db` (`.sqlite`, `.sqlite3`) open
/// or create an SQLite file (and its directory); `sqlite::memory:` a throwaway in-memory
/// database; `postgres://…` or `postgresql://…` PostgreSQL. Anything else is
/// [`StoreError::UnsupportedUrl`]. Migrations run on every connect and are a no-op when
/// already applied.
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    sqlx::any::install_default_drivers();
    let store = match DatabaseUrl::parse(url)? {
        DatabaseUrl::Sqlite(target) => sqlite::open(&target).await?,
        DatabaseUrl::Postgres(url) => postgres::open(&url).await?,
    };
    Ok(Arc::new(store))
}

/// The file an SQLite URL names, so the server can keep its secret file beside it; `None` for
/// PostgreSQL, in-memory and unsupported URLs.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    match DatabaseUrl::parse(url).ok()? {
        DatabaseUrl::Sqlite(SqliteTarget::File(path)) => Some(path),
        _ => None,
    }
}

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keygate_core::model::{ApiKey, KeyMatch, Member, Project, Workspace};
use keygate_core::routing::RoutingRule;
use keygate_core::KeyHash;

/// Everything Keygate persists. Implementations must be safe to share between tasks and nodes:
/// every method is one transaction.
#[async_trait]
pub trait Store: WebhookStore + IdentityStore + DashboardStore + Send + Sync + 'static {
    /// Which backend this is ("sqlite" or "postgres"), for logs and `/metrics`.
    fn backend(&self) -> &'static str;

    /// Cheap liveness check for readiness probes.
    async fn ping(&self) -> StoreResult<()>;

    // --- workspaces -----------------------------------------------------------------------

    /// Number of workspaces; zero means the store is fresh and `serve` bootstraps one.
    async fn workspace_count(&self) -> StoreResult<u64>;

    /// Creates a workspace with its first owner, and the audit row, in one transaction.
    async fn create_workspace(
        &self,
        workspace: &Workspace,
        owner: &NewMember,
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    async fn workspace(&self, id: &str) -> StoreResult<Workspace>;

    /// Saves settings (policy, default limits, credit balance) with their audit row.
    async fn save_workspace(&self, workspace: &Workspace, audit: &AuditEntry) -> StoreResult<()>;

    // --- members ----------------------------------------------------------------------------

    /// The member holding a management token, by the token's hash.
    async fn member_by_token(&self, token_hash: &KeyHash) -> StoreResult<Option<Member>>;

    async fn create_member(&self, member: &NewMember, audit: &AuditEntry) -> StoreResult<()>;

    async fn member(&self, workspace_id: &str, id: &str) -> StoreResult<Member>;

    async fn list_members(&self, workspace_id: &str) -> StoreResult<Vec<Member>>;

    /// Deletes a member; their token stops working at once. Refuses (Conflict LastOwner) to
    /// delete the last owner of a workspace, which would lock everyone out.
    async fn delete_member(
        &self,
        workspace_id: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    // --- projects ---------------------------------------------------------------------------

    /// Conflict(Name) when the name is taken in the workspace.
    async fn create_project(&self, project: &Project, audit: &AuditEntry) -> StoreResult<()>;

    async fn project(&self, workspace_id: &str, id: &str) -> StoreResult<Project>;

    async fn list_projects(&self, workspace_id: &str) -> StoreResult<Vec<Project>>;

    // --- keys -------------------------------------------------------------------------------

    /// Inserts a key and its first secret. Conflict(Name) when the name is taken in the
    /// workspace; Conflict(ActiveKey) when `single_active` is set and another key of the same
    /// environment is active.
    async fn create_key(
        &self,
        key: &ApiKey,
        secret: &KeyHash,
        single_active: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    async fn key(&self, workspace_id: &str, id: &str) -> StoreResult<ApiKey>;

    async fn list_keys(
        &self,
        workspace_id: &str,
        filter: &KeyFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiKey>>;

    /// Saves a changed key if its stored version is still `key.version`, applying `secrets`,
    /// and returns it with the new version. `VersionConflict` if someone else saved first;
    /// `NotFound` if it is gone; Conflict(Name|ActiveKey) as for `create_key`.
    async fn save_key(
        &self,
        key: &ApiKey,
        secrets: &SecretChange,
        single_active: bool,
        audit: &AuditEntry,
    ) -> StoreResult<ApiKey>;

    /// Deletes a key and its secrets for good.
    async fn delete_key(&self, workspace_id: &str, id: &str, audit: &AuditEntry)
        -> StoreResult<()>;

    /// The verification lookup: every key a secret hash belongs to, in any workspace. A native
    /// key's hash belongs to one key; an imported legacy key may have been imported by several
    /// workspaces (a hash is unique per workspace only, so an import never reveals whether
    /// another tenant holds the key), and the caller picks by workspace.
    async fn keys_by_hash(&self, hash: &KeyHash) -> StoreResult<Vec<KeyMatch>>;

    /// The key a secret hash belongs to when exactly one key holds it; `None` when none or
    /// several (an ambiguous legacy key) do.
    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<KeyMatch>> {
        let mut found = self.keys_by_hash(hash).await?;
        Ok(if found.len() == 1 { found.pop() } else { None })
    }

    /// Whether a workspace has any imported legacy key; when it has none, a string that is not
    /// of our key format is rejected without a lookup.
    async fn has_legacy_keys(&self, workspace_id: &str) -> StoreResult<bool>;

    /// Advances `last_used_at` for many keys at once; never moves one backwards.
    async fn touch_keys(&self, used: &[(String, DateTime<Utc>)]) -> StoreResult<()>;

    // --- idempotency ------------------------------------------------------------------------

    /// Claims an idempotency key for a request. `stale_after`: a claim older than this that
    /// never finished (its process died) may be taken over.
    async fn idempotency_begin(
        &self,
        claim: &IdempotencyClaim,
        stale_after: chrono::Duration,
    ) -> StoreResult<IdempotencyBegin>;

    /// Records the response of a claimed request so a retry can replay it. `body` is stored
    /// as given (the server encrypts bodies that hold secrets).
    async fn idempotency_finish(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> StoreResult<()>;

    /// Drops an unfinished claim (the request failed without effect) so a retry runs again.
    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()>;

    /// Deletes idempotency records created before `before`; returns how many.
    async fn purge_idempotency(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    // --- usage and request log ------------------------------------------------------------

    /// Writes one flush of the usage buffer in one transaction: adds the rollup and
    /// failed-authentication counters and inserts the request-log rows (a request id already
    /// logged is skipped). All or nothing, so a failed flush can be retried without counting
    /// anything twice.
    async fn record_usage(&self, batch: &UsageBatch) -> StoreResult<()>;

    /// The rollups of a workspace (or of one key) for the days `query.from..=query.to`.
    async fn usage_rollups(
        &self,
        workspace_id: &str,
        query: &UsageQuery,
    ) -> StoreResult<Vec<UsageRollup>>;

    /// The rollups of a workspace for the days of `query`, summed per `dimension` × outcome.
    async fn usage_totals(
        &self,
        workspace_id: &str,
        query: &UsageQuery,
        dimension: UsageDimension,
    ) -> StoreResult<Vec<UsageTotal>>;

    /// A request-log row by request id, if it is in this workspace and still kept.
    async fn request_log_entry(
        &self,
        workspace_id: &str,
        request_id: &str,
    ) -> StoreResult<Option<RequestLogEntry>>;

    /// Deletes request-log rows older than `before`; returns how many.
    async fn purge_request_log(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Failed authentication attempts of a workspace, newest first (by first seen).
    async fn list_auth_failures(
        &self,
        workspace_id: &str,
        filter: &AuthFailureFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuthFailure>>;

    /// Deletes failed-authentication aggregates of hours before `before`; returns how many.
    async fn purge_auth_failures(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    // --- audit ------------------------------------------------------------------------------

    async fn list_audit(
        &self,
        workspace_id: &str,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEntry>>;

    // --- routing rules ----------------------------------------------------------------------

    /// Inserts a rule with its audit row. Conflict(Name) when the name is taken in the
    /// workspace. A rule saved as the default takes the flag from the previous default in the
    /// same transaction.
    async fn create_routing_rule(&self, rule: &RoutingRule, audit: &AuditEntry) -> StoreResult<()>;

    async fn routing_rule(&self, workspace_id: &str, id: &str) -> StoreResult<RoutingRule>;

    /// A workspace's rules, oldest first (there are few).
    async fn list_routing_rules(&self, workspace_id: &str) -> StoreResult<Vec<RoutingRule>>;

    /// The workspace's default rule, used for keys without a rule of their own.
    async fn default_routing_rule(&self, workspace_id: &str) -> StoreResult<Option<RoutingRule>>;

    /// Saves a changed rule if its stored version is still `rule.version` and returns it with
    /// the new version; `VersionConflict` otherwise, `NotFound` if it is gone.
    async fn save_routing_rule(
        &self,
        rule: &RoutingRule,
        audit: &AuditEntry,
    ) -> StoreResult<RoutingRule>;

    /// Deletes a rule and, in the same transaction, clears it from every key that used it
    /// (those keys fall back to the workspace default). Returns the ids of those keys.
    async fn delete_routing_rule(
        &self,
        workspace_id: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> StoreResult<Vec<String>>;
}
