//! `GET /v1/audit`: the workspace's audit trail, newest first, paged by cursor.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Every action the audit trail records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AuditAction {
    #[serde(rename = "key.create")]
    KeyCreate,
    #[serde(rename = "key.import")]
    KeyImport,
    #[serde(rename = "key.update")]
    KeyUpdate,
    #[serde(rename = "key.enable")]
    KeyEnable,
    #[serde(rename = "key.disable")]
    KeyDisable,
    #[serde(rename = "key.revoke")]
    KeyRevoke,
    #[serde(rename = "key.regenerate")]
    KeyRegenerate,
    #[serde(rename = "key.rotate")]
    KeyRotate,
    #[serde(rename = "key.delete")]
    KeyDelete,
    /// A key was reported leaked (`POST /v1/leaks`); the row's `changes.note` holds the
    /// report's url, source and type and the action taken.
    #[serde(rename = "key.leaked")]
    KeyLeaked,
    #[serde(rename = "project.create")]
    ProjectCreate,
    #[serde(rename = "member.create")]
    MemberCreate,
    #[serde(rename = "member.delete")]
    MemberDelete,
    /// A member signed in to the dashboard (`changes.method`: `management_token` or
    /// `sign_in_link`).
    #[serde(rename = "member.sign_in")]
    MemberSignIn,
    /// A refused dashboard sign-in whose workspace is known (a used or expired one-time
    /// link); `actor` is `unauthenticated`, `changes.reason` says why.
    #[serde(rename = "member.sign_in_failed")]
    MemberSignInFailed,
    #[serde(rename = "routing_rule.create")]
    RoutingRuleCreate,
    #[serde(rename = "routing_rule.update")]
    RoutingRuleUpdate,
    #[serde(rename = "routing_rule.delete")]
    RoutingRuleDelete,
    #[serde(rename = "workspace.create")]
    WorkspaceCreate,
    #[serde(rename = "workspace.update")]
    WorkspaceUpdate,
    #[serde(rename = "webhook.create")]
    WebhookCreate,
    #[serde(rename = "webhook.update")]
    WebhookUpdate,
    #[serde(rename = "webhook.delete")]
    WebhookDelete,
    #[serde(rename = "identity.create")]
    IdentityCreate,
    #[serde(rename = "identity.update")]
    IdentityUpdate,
    #[serde(rename = "identity.delete")]
    IdentityDelete,
    /// Keygate disabled an endpoint whose every delivery attempt failed for three days (the
    /// actor is `system`; `changes.disabled_reason` says why).
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
    /// Failed authentication attempts with a customer's key, aggregated per display form ×
    /// source × code × hour (see [`AuditItem`]).
    #[serde(rename = "auth.failed")]
    AuthFailed,
}

impl AuditAction {
    /// Every action, for tables and tests.
    pub const ALL: [AuditAction; 28] = [
        AuditAction::KeyCreate,
        AuditAction::KeyImport,
        AuditAction::KeyUpdate,
        AuditAction::KeyEnable,
        AuditAction::KeyDisable,
        AuditAction::KeyRevoke,
        AuditAction::KeyRegenerate,
        AuditAction::KeyRotate,
        AuditAction::KeyDelete,
        AuditAction::KeyLeaked,
        AuditAction::ProjectCreate,
        AuditAction::MemberCreate,
        AuditAction::MemberDelete,
        AuditAction::MemberSignIn,
        AuditAction::MemberSignInFailed,
        AuditAction::RoutingRuleCreate,
        AuditAction::RoutingRuleUpdate,
        AuditAction::RoutingRuleDelete,
        AuditAction::WorkspaceCreate,
        AuditAction::WorkspaceUpdate,
        AuditAction::WebhookCreate,
        AuditAction::WebhookUpdate,
        AuditAction::WebhookDelete,
        AuditAction::IdentityCreate,
        AuditAction::IdentityUpdate,
        AuditAction::IdentityDelete,
        AuditAction::WebhookDisabled,
        AuditAction::AuthFailed,
    ];

    /// The stored and wire form (`key.create`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::KeyCreate => "key.create",
            AuditAction::KeyImport => "key.import",
            AuditAction::KeyUpdate => "key.update",
            AuditAction::KeyEnable => "key.enable",
            AuditAction::KeyDisable => "key.disable",
            AuditAction::KeyRevoke => "key.revoke",
            AuditAction::KeyRegenerate => "key.regenerate",
            AuditAction::KeyRotate => "key.rotate",
            AuditAction::KeyDelete => "key.delete",
            AuditAction::KeyLeaked => "key.leaked",
            AuditAction::ProjectCreate => "project.create",
            AuditAction::MemberCreate => "member.create",
            AuditAction::MemberDelete => "member.delete",
            AuditAction::MemberSignIn => "member.sign_in",
            AuditAction::MemberSignInFailed => "member.sign_in_failed",
            AuditAction::RoutingRuleCreate => "routing_rule.create",
            AuditAction::RoutingRuleUpdate => "routing_rule.update",
            AuditAction::RoutingRuleDelete => "routing_rule.delete",
            AuditAction::WorkspaceCreate => "workspace.create",
            AuditAction::WorkspaceUpdate => "workspace.update",
            AuditAction::WebhookCreate => "webhook.create",
            AuditAction::WebhookUpdate => "webhook.update",
            AuditAction::WebhookDelete => "webhook.delete",
            AuditAction::IdentityCreate => "identity.create",
            AuditAction::IdentityUpdate => "identity.update",
            AuditAction::IdentityDelete => "identity.delete",
            AuditAction::WebhookDisabled => "webhook.disabled",
            AuditAction::AuthFailed => "auth.failed",
        }
    }

    /// The action stored as `text`, if this version knows it.
    pub fn parse(text: &str) -> Option<AuditAction> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// What an audit entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    Key,
    Project,
    Member,
    RoutingRule,
    Workspace,
    Webhook,
    Identity,
}

impl TargetType {
    pub const ALL: [TargetType; 7] = [
        TargetType::Key,
        TargetType::Project,
        TargetType::Member,
        TargetType::RoutingRule,
        TargetType::Workspace,
        TargetType::Webhook,
        TargetType::Identity,
    ];

    /// The stored and wire form (`routing_rule`).
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Key => "key",
            TargetType::Project => "project",
            TargetType::Member => "member",
            TargetType::RoutingRule => "routing_rule",
            TargetType::Workspace => "workspace",
            TargetType::Webhook => "webhook",
            TargetType::Identity => "identity",
        }
    }

    /// The target type stored as `text`, if this version knows it.
    pub fn parse(text: &str) -> Option<TargetType> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// `GET /v1/audit`. With `action=auth.failed` the failed authentication attempts are listed
/// instead. Filters combine as AND: a failed attempt has no actor and no key id (it is listed
/// by the display form of what was presented), so with `key_id` or `actor` the page is empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries about this target (a key's, project's, member's… id). Failed attempts
    /// (`action=auth.failed`) have none, so none match.
    #[param(nullable = false)]
    pub key_id: Option<String>,
    /// Only changes made by this member (`mem_…`, or `system`). Failed attempts
    /// (`action=auth.failed`) have no actor, so none match.
    #[param(nullable = false)]
    pub actor: Option<String>,
    /// Only this action.
    #[param(inline, nullable = false)]
    pub action: Option<AuditAction>,
    /// Only entries at or after this time (RFC 3339).
    #[param(nullable = false)]
    pub since: Option<DateTime<Utc>>,
    /// Only entries at or before this time (RFC 3339).
    #[param(nullable = false)]
    pub until: Option<DateTime<Utc>>,
    /// Entries per page, 1–500; default 50.
    #[param(minimum = 1, maximum = 500, nullable = false, example = 50)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(nullable = false, pattern = "^[+-]?[0-9]{1,18}\\.[\\s\\S]+$")]
    pub cursor: Option<String>,
}

/// One row of the audit trail: a change (`changes` holds `{"field": {"before", "after"}}` for
/// the fields that changed, never a secret), or, for `auth.failed`, an hour's failed attempts
/// with one display form, source and code (`actor` is `unauthenticated`, `target_id` the
/// display form, `at` the first attempt; `code`, `attempts`, `first_seen` and `last_seen` are
/// set, `request_id` and `user_agent` are `null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "aud_7yH3jK9lM1nB", "workspace_id": "ws_5tR8yU1iO3pA", "actor": "mem_4gF6hJ8kL0zX", "action": "key.revoke", "target_type": "key", "target_id": "key_2bX9kQ4mN7pL1vT8cYw3", "changes": {"status": {"before": "active", "after": "revoked"}}, "source_ip": "203.0.113.7", "user_agent": "keygate-cli/0.1.0", "request_id": "req_0Ma3kX9bQ2pL7vT4cYw1", "at": "2026-01-31T12:00:00Z"}))]
pub struct AuditItem {
    pub id: String,
    pub workspace_id: String,
    /// The member's id, `system` for changes Keygate makes itself, `unauthenticated` for
    /// failed attempts.
    pub actor: String,
    pub action: AuditAction,
    pub target_type: TargetType,
    pub target_id: String,
    #[schema(value_type = Object)]
    pub changes: serde_json::Value,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
    /// `auth.failed` only: the refusal's code (`invalid_api_key`, `revoked`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<crate::verdict::Verdict>,
    /// `auth.failed` only: how many attempts the row counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u64>,
    /// `auth.failed` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<DateTime<Utc>>,
    /// `auth.failed` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
}

/// A page of the audit trail, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditItem>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_names_are_the_stored_ones() {
        for action in AuditAction::ALL {
            assert_eq!(serde_json::to_value(action).expect("json"), action.as_str());
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        for target in TargetType::ALL {
            assert_eq!(serde_json::to_value(target).expect("json"), target.as_str());
            assert_eq!(TargetType::parse(target.as_str()), Some(target));
        }
    }
}
