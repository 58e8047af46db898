//! Building audit entries: who (member), what (action, target), the before/after of the fields
//! that changed, and from where (source IP, user agent, request id). The store writes the entry
//! in the same transaction as the change.

use axum::extract::FromRequestParts;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use keygate_core::ids;
use keygate_store::AuditEntry;
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::peer_ip;
use crate::request_id::RequestId;
use crate::state::AppState;

/// Where a management request came from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: String,
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let source_ip = peer_ip(&parts.extensions);
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        Ok(Origin {
            source_ip,
            user_agent,
            request_id,
        })
    }
}

/// An audit entry for a change made by `caller`.
pub fn entry(
    caller: &Caller,
    origin: &Origin,
    action: &str,
    target_type: &str,
    target_id: &str,
    changes: Value,
    at: chrono::DateTime<chrono::Utc>,
) -> AuditEntry {
    AuditEntry {
        id: ids::new_id("aud"),
        workspace_id: caller.workspace.id.clone(),
        actor: caller.member.id.clone(),
        action: action.to_owned(),
        target_type: target_type.to_owned(),
        target_id: target_id.to_owned(),
        changes,
        source_ip: origin.source_ip.clone(),
        user_agent: origin.user_agent.clone(),
        request_id: origin.request_id.clone(),
        at,
    }
}

/// `{"field": {"before": …, "after": …}}` for every top-level field that differs, skipping
/// bookkeeping fields that change on every save.
pub fn diff(before: &Value, after: &Value) -> Value {
    const IGNORED: [&str; 3] = ["version", "updated_at", "last_used_at"];
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    for field in b.keys().chain(a.keys()) {
        if IGNORED.contains(&field.as_str()) || out.contains_key(field) {
            continue;
        }
        let (old, new) = (b.get(field), a.get(field));
        if old != new {
            out.insert(
                field.clone(),
                serde_json::json!({"before": old.cloned().unwrap_or(Value::Null), "after": new.cloned().unwrap_or(Value::Null)}),
            );
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_lists_only_changed_fields() {
        let before = json!({"name": "a", "status": "active", "version": 1});
        let after = json!({"name": "a", "status": "revoked", "version": 2});
        assert_eq!(
            diff(&before, &after),
            json!({"status": {"before": "active", "after": "revoked"}})
        );
    }
}
