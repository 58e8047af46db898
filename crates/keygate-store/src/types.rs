//! Values passed to and from the store that are not domain entities: audit entries,
//! filters, pages, secret changes and idempotency claims.

use chrono::{DateTime, Utc};
use keygate_core::model::{KeyStatus, Member};
use keygate_core::KeyHash;
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
