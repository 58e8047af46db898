//! The entities: workspaces, projects, members and API keys, and the pure state transitions of
//! a key's lifecycle. The store persists these; the server decides with them.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::key::{EnvTag, KeyPrefix};
use crate::limits::{KeyLimits, RateWindow};
use crate::money::Micros;

/// A tenant: its own keys, projects, members and limits; invisible to every other workspace.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub key_prefix: KeyPrefix,
    /// When set, an environment holds at most one active key: creating (or enabling) a second
    /// is refused (`one_active_key`); rotating the active key gives it a new secret, with a
    /// grace period for the old one. Turning it on is refused while an environment has two.
    pub single_active_key: bool,
    /// Rate windows for keys that have none of their own (the plan default).
    pub default_rate_limits: Vec<RateWindow>,
    /// Named stricter policies a request may pick with `keygate-ratelimit-policy`.
    pub rate_limit_policies: BTreeMap<String, Vec<RateWindow>>,
    /// The final backstop for spend; `None` means the workspace is not credit-limited.
    pub credit_balance: Option<Micros>,
    /// A `credits.low` webhook event is sent when what remains of the credit balance falls
    /// to this (once per balance); `None` sends none.
    #[serde(default)]
    pub credits_low_threshold: Option<Micros>,
    /// What a report of a leaked key does to it (`POST /v1/leaks`).
    #[serde(default)]
    pub leak_policy: LeakPolicy,
    pub created_at: DateTime<Utc>,
}

/// What happens to a key reported as leaked. Revoking is the default: a leaked secret is in
/// unknown hands, and revocation is the only answer that cannot be undone by them.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakPolicy {
    /// The key stops working for good.
    #[default]
    Revoke,
    /// The key stops working until someone enables it again.
    Disable,
    /// Only the audit row: for workspaces that rotate leaked keys by their own process.
    Notify,
}

impl LeakPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            LeakPolicy::Revoke => "revoke",
            LeakPolicy::Disable => "disable",
            LeakPolicy::Notify => "notify",
        }
    }

    pub fn parse(s: &str) -> Option<LeakPolicy> {
        match s {
            "revoke" => Some(LeakPolicy::Revoke),
            "disable" => Some(LeakPolicy::Disable),
            "notify" => Some(LeakPolicy::Notify),
            _ => None,
        }
    }
}

/// A project inside a workspace; keys may be scoped to some projects.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A customer of the workspace (the platform's own user, team or account), holding any number
/// of keys: one per environment, CI system or teammate. Its limits are counted once for all
/// its keys, on top of each key's own, so a customer cannot multiply a quota by creating keys.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `idt_…`.
    pub id: String,
    pub workspace_id: String,
    /// The platform's id for this customer: unique in the workspace, so a platform can find
    /// the identity without keeping Keygate's id.
    pub external_id: String,
    pub name: Option<String>,
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The same kinds a key has; checked together with the key's, all or nothing.
    pub limits: KeyLimits,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency counter; each saved change increments it.
    pub version: i64,
}

/// What a member may do. Which role may call which route is the table in
/// [`crate::access`]; the roles are ordered by trust only for owners, editors and viewers —
/// a service member is not "above" a viewer, it may do different things.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including members and workspace settings.
    Owner,
    /// Keys, projects and routing rules; verifies and meters.
    Editor,
    /// Reads everything an editor can change; consumes nothing.
    Viewer,
    /// A backend that verifies keys and meters usage (verify, reservations, usage reports),
    /// and may neither read nor manage keys: the token to put in a service's environment.
    Service,
    /// A secret scanner: may report leaked keys (`POST /v1/leaks`) and nothing else, so the
    /// token a scanning service holds cannot read, verify or change keys.
    Reporter,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Service => "service",
            Role::Reporter => "reporter",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "editor" => Some(Role::Editor),
            "viewer" => Some(Role::Viewer),
            "service" => Some(Role::Service),
            "reporter" => Some(Role::Reporter),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person (or a CI job) with a management token.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub role: Role,
    /// Display form of the management token, so a member can tell tokens apart.
    pub token_display: String,
    pub created_at: DateTime<Utc>,
}

/// A key's status. Revoked is final; disabled is a reversible toggle.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Disabled,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Disabled => "disabled",
            KeyStatus::Revoked => "revoked",
        }
    }
    pub fn parse(s: &str) -> Option<KeyStatus> {
        match s {
            "active" => Some(KeyStatus::Active),
            "disabled" => Some(KeyStatus::Disabled),
            "revoked" => Some(KeyStatus::Revoked),
            _ => None,
        }
    }
}

/// Which projects a key may act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scope {
    /// Serialized as the string `"all"`.
    #[serde(with = "all_literal")]
    All,
    /// A list of project ids.
    Projects(Vec<String>),
}

mod all_literal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("all")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
        let s = String::deserialize(deserializer)?;
        if s == "all" {
            Ok(())
        } else {
            Err(serde::de::Error::custom(
                "scope is \"all\" or a list of project ids",
            ))
        }
    }
}

impl Scope {
    pub fn allows(&self, project_id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Projects(ids) => ids.iter().any(|id| id == project_id),
        }
    }
}

/// An API key as stored and shown: everything but its secret.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: Option<String>,
    pub environment: EnvTag,
    pub scope: Scope,
    pub permissions: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub status: KeyStatus,
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub limits: KeyLimits,
    pub routing_rule_id: Option<String>,
    /// The identity (customer) the key belongs to, whose limits it also counts against.
    #[serde(default)]
    pub identity_id: Option<String>,
    /// `kg_live_ab12…mn34`: enough to recognise a key, never enough to use it.
    pub display: String,
    /// Imported from another system: authenticates, carries no limits.
    pub legacy: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency counter; each saved change increments it.
    pub version: i64,
}

impl ApiKey {
    /// Whether the key has passed its expiry at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Lifecycle transitions that the current status forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the key is revoked; revocation cannot be undone. Create a new key instead")]
    Revoked,
}

impl ApiKey {
    /// Disable or enable; a revoked key stays revoked.
    pub fn set_enabled(&mut self, enabled: bool) -> Result<(), TransitionError> {
        if self.status == KeyStatus::Revoked {
            return Err(TransitionError::Revoked);
        }
        self.status = if enabled {
            KeyStatus::Active
        } else {
            KeyStatus::Disabled
        };
        Ok(())
    }

    /// Revoke for good. Revoking twice is not an error: the end state is what was asked for.
    pub fn revoke(&mut self) {
        self.status = KeyStatus::Revoked;
    }

    /// A key that can be given a new secret: not revoked.
    pub fn ensure_not_revoked(&self) -> Result<(), TransitionError> {
        if self.status == KeyStatus::Revoked {
            Err(TransitionError::Revoked)
        } else {
            Ok(())
        }
    }
}

/// One secret that authenticates a key. A key has one, or two during a rotation's grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySecret {
    pub hash: crate::hash::KeyHash,
    /// When this secret stops working; `None` until it is rotated out.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What the store returns for a verification lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyMatch {
    pub key: ApiKey,
    /// The end of a rotation grace period for the secret that matched.
    pub secret_expires_at: Option<DateTime<Utc>>,
}
