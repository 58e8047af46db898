//! Values passed to and from the store that are not domain entities: audit entries,
//! filters, pages, secret changes and idempotency claims.

use chrono::{DateTime, Utc};
use keygate_core::model::{KeyStatus, Member};
use keygate_core::{KeyHash, Micros};
use serde::{Deserialize, Serialize};

/// A member together with the hash of their management token.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub member: Member,
    pub token_hash: KeyHash,
}

/// One row of the audit trail. `changes` holds `{"field": {"before": …, "after": …}}` for the
/// fields that changed; it never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: String,
    pub workspace_id: String,
    /// Member id, or "system" for changes Keygate makes itself (bootstrap).
    pub actor: String,
    /// `key.create`, `key.revoke`, `member.delete`, …
    pub action: String,
    /// `key`, `project`, `member`, `workspace`.
    pub target_type: String,
    pub target_id: String,
    pub changes: serde_json::Value,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: String,
    pub at: DateTime<Utc>,
}

/// How a save changes a key's secrets.
#[derive(Debug, Clone)]
pub enum SecretChange {
    /// Secrets untouched.
    None,
    /// All old secrets die now; this one replaces them (regenerate).
    Replace(KeyHash),
    /// The current secrets keep working until `old_until` (capped to their own earlier
    /// expiry), and `new` works from now on (rotate).
    Rotate {
        new: KeyHash,
        old_until: DateTime<Utc>,
    },
    /// Secrets still in a rotation's grace period die at `at`; the current secret is
    /// untouched (a leaked old secret).
    EndRetiring { at: DateTime<Utc> },
}

/// Filters for listing keys; all optional, combined with AND.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KeyFilter {
    pub status: Option<KeyStatus>,
    pub environment: Option<String>,
    /// Keys whose scope includes this project (keys scoped to "all" included).
    pub project: Option<String>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    pub legacy: Option<bool>,
    /// Keys of this identity.
    pub identity: Option<String>,
}

/// Filters for the audit trail.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFilter {
    pub target_id: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Keyset pagination: newest first; `after` is the opaque cursor of the previous page.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            after: None,
            limit: 50,
        }
    }
}

/// A page of results and the cursor for the next one (`None` on the last page).
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// An attempt to claim an idempotency key. `scope` separates callers (workspace and member),
/// `fingerprint` identifies the request (method, path, body) so the same key reused for a
/// different request is caught.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub scope: String,
    pub key: String,
    pub fingerprint: [u8; 32],
    pub now: DateTime<Utc>,
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First time: run the request, then `idempotency_finish`.
    Claimed,
    /// Done before: answer with this.
    Replay { status: u16, body: Vec<u8> },
    /// Another request with this key is running right now.
    InProgress,
    /// The key was used before for a different request.
    Mismatch,
}

// --- usage and request log ----------------------------------------------------------------

/// What one flush of the usage buffer writes, in one transaction: counters to add to the
/// rollups and to the failed-authentication aggregates, and request-log rows. Rollups and
/// aggregates must be pre-summed per primary key (one entry per key × day × operation ×
/// project × outcome, resp. per workspace × hour × display × source × code).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageBatch {
    pub rollups: Vec<UsageRollup>,
    pub requests: Vec<RequestLogEntry>,
    pub auth_failures: Vec<AuthFailure>,
}

impl UsageBatch {
    pub fn is_empty(&self) -> bool {
        self.rollups.is_empty() && self.requests.is_empty() && self.auth_failures.is_empty()
    }
}

/// Counters of one key on one UTC day for one operation, project and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRollup {
    pub workspace_id: String,
    pub key_id: String,
    pub day: chrono::NaiveDate,
    pub operation: String,
    pub project: Option<String>,
    /// `valid`, a denial code, or `reported` for usage reported after the fact.
    pub outcome: String,
    pub requests: u64,
    pub tokens: u64,
    pub cost: Micros,
}

/// One request that identified a key, as the request log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLogEntry {
    pub request_id: String,
    pub workspace_id: String,
    pub key_id: String,
    pub key_display: Option<String>,
    pub at: DateTime<Utc>,
    pub operation: String,
    pub project: Option<String>,
    pub outcome: String,
    pub tokens: u64,
    pub cost: Micros,
    pub source_ip: Option<String>,
}

/// Failed authentication attempts with the same display form, source and code in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthFailure {
    /// Given when the aggregate's first attempt is written; later batches keep it.
    pub id: String,
    pub workspace_id: String,
    /// Start of the UTC hour the attempts fell in.
    pub hour: DateTime<Utc>,
    /// Display form of what was presented (`kg_live_ab12…mn34`); never the secret. Empty
    /// when no key was sent.
    pub key_display: String,
    pub source_ip: Option<String>,
    /// `missing_api_key`, `malformed_api_key`, `invalid_api_key`, `revoked`, …
    pub code: String,
    pub attempts: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// Which rollups to read: a workspace's (or one key's) days `from..=to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub key_id: Option<String>,
    /// Only the keys that belong to this identity now: usage follows a key to the identity
    /// it is moved to, and a deleted key's usage belongs to no identity.
    pub identity_id: Option<String>,
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
}

/// The dimension workspace usage is summed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageDimension {
    Key,
    /// The identity each key belongs to now (`None`: keys of no identity, and deleted keys).
    Identity,
    Project,
    Operation,
    Day,
}

/// Rollups summed over everything but one dimension and the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotal {
    /// The key id, project (`None`: requests that named none), operation or `YYYY-MM-DD`.
    pub group: Option<String>,
    pub outcome: String,
    pub requests: u64,
    pub tokens: u64,
    pub cost: Micros,
}

/// Filters for listing failed authentication attempts (by when they were first seen).
#[derive(Debug, Clone, Default)]
pub struct AuthFailureFilter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub code: Option<String>,
}
