//! `POST /v1/leaks`: secrets a scanner found in public, in the shape secret scanners send
//! (GitHub's secret scanning partner program, gitleaks or trufflehog output mapped to it): a
//! JSON array of `{"token", "type", "url", "source"}`.
//!
//! The answer says, per reported token, whether it is a key of *the caller's* workspace and
//! what was done. A token of another workspace answers exactly like one that is no key at
//! all, so a report reveals nothing about other tenants; the token itself is never echoed,
//! only its display form.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most tokens one report may carry.
pub const MAX_LEAKS: usize = 100;

/// One secret found in public.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "token": "kg_live_abcdefghijklmnopqrstuvwxyz1dLeFc",
    "type": "keygate_api_key",
    "url": "https://github.com/example/app/blob/0123abc/.env#L3",
    "source": "github"
}))]
pub struct LeakReport {
    /// The secret as found (1 to 256 characters, not only spaces).
    #[schema(min_length = 1, max_length = 256, pattern = "\\S")]
    pub token: String,
    /// The scanner's name for the kind of secret (at most 100 characters).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub kind: Option<String>,
    /// Where it was found (at most 2,048 characters); recorded, never fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    /// Who found it (at most 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub source: Option<String>,
}

/// The body of `POST /v1/leaks`: 1 to [`MAX_LEAKS`] reports (documented inline, so the
/// array's bounds are stated where the body is).
pub struct LeakReports;

impl utoipa::PartialSchema for LeakReports {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let schema = serde_json::json!({
            "type": "array",
            "items": {"$ref": "#/components/schemas/LeakReport"},
            "minItems": 1,
            "maxItems": MAX_LEAKS,
        });
        serde_json::from_value(schema).unwrap_or_else(|_| {
            utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::default())
        })
    }
}

impl ToSchema for LeakReports {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            LeakReport::name().into_owned(),
            <LeakReport as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// What was done about a reported key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeakAction {
    /// Revoked now (the workspace's leak policy `revoke`).
    Revoked,
    /// Disabled now (policy `disable`).
    Disabled,
    /// Left working, recorded in the audit trail (policy `notify`).
    Notified,
    /// Already revoked; recorded in the audit trail.
    AlreadyRevoked,
    /// The reported secret is an old one of a rotated key, still in its grace period: it
    /// stops working now, and the key's current secret keeps working.
    OldSecretEnded,
    /// The reported secret is an old one of a rotated key that no longer works; the key is
    /// left alone, the report recorded.
    SecretExpired,
}

/// The answer for one reported token, in the order reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeakOutcome {
    /// The token's display form (`kg_live_ab12…mn34`), never the token.
    pub token: String,
    /// Whether the token is a key of the caller's workspace.
    pub matched: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<LeakAction>,
}
