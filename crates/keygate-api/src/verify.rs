//! `POST /v1/keys/verify`: verify mode. A backend asks whether the key its client presented
//! may make a request; the answer is always 200 (the verify call itself worked), with the
//! verdict in the body and the `RateLimit-*`/`Retry-After` headers ready to be copied onto the
//! backend's own answer.

use chrono::{DateTime, Utc};
use keygate_core::model::KeyMatch;
use keygate_core::{EnvTag, Micros};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

use crate::limits::LimitState;
use crate::verdict::Verdict;
use crate::{KeyLimits, Scope};

/// The request header that picks one of the workspace's stricter named rate policies.
pub const POLICY_HEADER: &str = "keygate-ratelimit-policy";

/// `POST /v1/keys/verify`: the key to check, what the request needs, and what it consumes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "key": "kg_live_4kT9wQ2mZxR8vB3nL6pY1cHj0aF5sD7gE2",
    "project": "proj_8fKq2LmN4xR7",
    "permissions": ["results:read"],
    "tokens": 1200,
    "cost": "0.0042",
    "operation": "POST /v1/chat",
    "source_ip": "203.0.113.7"
}))]
pub struct VerifyRequest {
    /// The key the end customer presented, exactly as it was sent. Absent or `null` is
    /// answered `missing_api_key`; any string is checked (and refused if it is not a key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The project the request acts on (`proj_…`): the key's scope must include it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^proj_[A-Za-z0-9]{1,64}$", example = "proj_8fKq2LmN4xR7")]
    pub project: Option<String>,
    /// Permissions the request needs; the key must hold every one (`results:*` grants every
    /// `results:…`, `*` grants everything). One no key holds is answered `forbidden`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// Tokens this request consumes from the key's token budget; default 0.
    #[serde(
        default,
        deserialize_with = "crate::fields::whole_u64",
        skip_serializing_if = "is_zero"
    )]
    #[schema(schema_with = tokens_schema)]
    pub tokens: u64,
    /// What this request costs (USD), consumed from the key's cost budget, daily spend cap and
    /// the workspace's credits; default 0.
    #[serde(default, skip_serializing_if = "is_free")]
    pub cost: Micros,
    /// What the caller is doing (its route), recorded with usage: 1–128 characters, no
    /// control characters; default `verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
        example = "POST /v1/chat"
    )]
    pub operation: Option<String>,
    /// The end customer's IP address, recorded with usage and failed attempts; default: the
    /// address the verify call came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::fields::source_ip)]
    pub source_ip: Option<String>,
}

/// The request headers verify mode reads.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct VerifyHeaders {
    /// The name of one of the workspace's rate-limit policies (as `GET /v1/workspace` lists
    /// them: 1–40 ASCII letters, digits, `-` or `_`): its windows are checked on top of the
    /// key's, so it can only tighten. A name the workspace does not define is refused (400)
    /// once the key is identified; the header is not read when the key is refused before
    /// its limits are checked.
    #[serde(rename = "keygate-ratelimit-policy")]
    #[param(value_type = String, required = false, example = "free-tier")]
    pub policy: Option<String>,
}

/// The verdict. `status` is what the caller should answer its own client with; on a refusal
/// `code` and `message` say why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "valid": true,
    "code": "valid",
    "status": 200,
    "message": null,
    "key": {
        "id": "key_2bX9kQ4mN7pL1vT8cYw3",
        "name": "ci deploy",
        "workspace_id": "ws_7hR2kL9mQ4xB",
        "environment": "live",
        "scope": "all",
        "permissions": ["results:read"],
        "expires_at": null,
        "metadata": {"team": "platform"},
        "legacy": false,
        "limits": {"rate_limits": [{"limit": 100, "window": "1m"}]}
    },
    "limits": [{"kind": "rate", "scope": "key", "window_secs": 60, "unit": "requests", "limit": 100, "used": 1, "remaining": 99, "reset_at": "2026-01-31T12:01:00Z"}],
    "retry_after": null
}))]
pub struct VerifyResponse {
    /// Whether the key may make the request (`code` is then `valid`).
    pub valid: bool,
    /// `valid`, or why the key was refused.
    pub code: Verdict,
    /// The HTTP status to answer the end customer with: 200, or the refusal's (401 for a
    /// missing, malformed, unknown, revoked, disabled or expired key; 403 `forbidden`; 402
    /// spend cap or credits; 429 rate or budget limits; 503 `limiter_unavailable`).
    #[schema(schema_with = status_schema)]
    pub status: u16,
    /// A sentence for people about the refusal; `null` when valid.
    pub message: Option<String>,
    /// The key, when one was identified (also when it was then refused).
    pub key: Option<VerifiedKey>,
    /// The key's consumption of each limit checked (empty when limits were not reached in
    /// the checks).
    pub limits: Vec<LimitState>,
    /// Seconds until a request refused by a limit may be retried (as `Retry-After`).
    #[schema(minimum = 0)]
    pub retry_after: Option<u64>,
    /// The limit that refused the request, when one did: `scope` says whether it was the
    /// key's, its identity's or the workspace's. One of `limits`.
    #[serde(default)]
    pub limit: Option<LimitState>,
}

/// The identity a verified key belongs to: whom the request is from, in the platform's own
/// terms (`external_id`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifiedIdentity {
    pub id: String,
    pub external_id: String,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// The key as verify mode shows it: what the caller needs to serve the request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifiedKey {
    pub id: String,
    pub name: String,
    pub workspace_id: String,
    pub environment: EnvTag,
    pub scope: Scope,
    pub permissions: Vec<String>,
    /// When the key stops working: its expiry, or the end of the rotation grace period of
    /// the (old) secret presented, whichever comes first.
    pub expires_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Imported from another system: authenticates, carries no limits.
    pub legacy: bool,
    pub limits: KeyLimits,
    /// The identity (customer) the key belongs to, if any.
    #[serde(default)]
    pub identity: Option<VerifiedIdentity>,
}

impl From<&KeyMatch> for VerifiedKey {
    fn from(found: &KeyMatch) -> Self {
        let k = &found.key;
        VerifiedKey {
            id: k.id.clone(),
            name: k.name.clone(),
            workspace_id: k.workspace_id.clone(),
            environment: k.environment.clone(),
            scope: k.scope.clone(),
            permissions: k.permissions.clone(),
            expires_at: match (k.expires_at, found.secret_expires_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            metadata: k.metadata.clone(),
            legacy: k.legacy,
            limits: k.limits.clone(),
            identity: None,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_free(cost: &Micros) -> bool {
    *cost == Micros::ZERO
}

// `schema_with` fields lose their doc comment in the document: these give the shared
// schemas (`crate::fields`) the field's description back.

/// `tokens`: any `u64`.
fn tokens_schema() -> RefOr<Schema> {
    described(
        crate::fields::tokens(),
        "Tokens this request consumes from the key's token budget; default 0.",
    )
}

/// `status`: 200 or a refusal's status.
fn status_schema() -> RefOr<Schema> {
    described(
        crate::fields::verdict_status(),
        "The HTTP status to answer the end customer with: 200, or the refusal's (401 for a missing, malformed, unknown, revoked, disabled or expired key; 403 `forbidden`; 402 spend cap or credits; 429 rate or budget limits; 503 `limiter_unavailable`).",
    )
}

fn described(mut schema: RefOr<Schema>, description: &str) -> RefOr<Schema> {
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        object.description = Some(description.to_owned());
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::Denial;
    use serde_json::json;

    #[test]
    fn project_and_operation_are_bounded_as_everywhere_else() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(VerifyRequest::schema()).expect("serialise");
        let properties = &schema["properties"];
        let answer = serde_json::to_value(VerifyResponse::schema()).expect("serialise");
        assert_eq!(
            properties["project"]["pattern"],
            crate::fields::PROJECT_PATTERN
        );
        assert_eq!(
            properties["operation"]["pattern"],
            crate::fields::OPERATION_PATTERN
        );
        assert_eq!(properties["operation"]["maxLength"], 128);
        assert_eq!(properties["tokens"]["maximum"], json!(u64::MAX));
        assert!(properties["tokens"]["description"].is_string());
        assert!(answer["properties"]["status"]["description"].is_string());
        assert!(schema["required"].is_null(), "every field is optional");
    }

    #[test]
    fn the_status_enum_holds_every_denials_status() {
        let statuses = serde_json::to_value(status_schema()).expect("serialise")["enum"].clone();
        for denial in Denial::ALL {
            assert!(
                statuses
                    .as_array()
                    .is_some_and(|s| s.contains(&json!(denial.status()))),
                "{denial:?}"
            );
        }
    }

    #[test]
    fn a_request_reads_as_before() {
        let body: VerifyRequest = serde_json::from_value(json!({
            "key": "kg_live_x", "tokens": 5, "cost": "0.5", "source_ip": "::1"
        }))
        .expect("a request");
        assert_eq!(body.tokens, 5);
        assert_eq!(body.permissions, Vec::<String>::new());
        // Unknown fields are the server extractor's to refuse (`extract::strict_json`).
        assert!(serde_json::from_value::<VerifyRequest>(json!({"colour": 1})).is_ok());
        assert!(serde_json::from_value::<VerifyRequest>(json!({"tokens": null})).is_err());
    }
}
