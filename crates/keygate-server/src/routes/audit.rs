//! `GET /v1/audit`: the workspace's audit trail, newest first, paged by cursor. Any member may
//! read it.
//!
//! Management changes are written with their audit row in the same transaction (see
//! `keygate-store`). Failed authentication attempts are a separate, aggregated record (one row
//! per display form × source × code × hour with a count, see `usage.rs`); they are listed
//! with `action=auth.failed`, in the same item shape so one client renders both, with the
//! extra fields `code`, `attempts`, `first_seen` and `last_seen`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use keygate_store::{AuditFilter, AuthFailure, AuthFailureFilter, Page};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::keys::page_request;
use crate::state::AppState;

/// The action under which failed authentication attempts are listed.
pub const AUTH_FAILED: &str = "auth.failed";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    key_id: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    /// RFC 3339; both ends inclusive.
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    let page = page_request(params.limit, params.cursor)?;
    if params.action.as_deref() == Some(AUTH_FAILED) {
        if params.key_id.is_some() || params.actor.is_some() {
            return Err(ApiError::invalid(
                "key_id and actor cannot be combined with action=auth.failed: failed attempts \
                 have no actor, and are listed by the display form of what was presented",
            ));
        }
        let failures = state
            .store
            .list_auth_failures(
                &caller.workspace.id,
                &AuthFailureFilter {
                    since: params.since,
                    until: params.until,
                    code: None,
                },
                &page,
            )
            .await?;
        return Ok(Json(json!({
            "items": failures.items.iter().map(failure_item).collect::<Vec<_>>(),
            "next_cursor": failures.next_cursor,
        })));
    }
    let filter = AuditFilter {
        target_id: params.key_id,
        actor: params.actor,
        action: params.action,
        since: params.since,
        until: params.until,
    };
    let Page { items, next_cursor } = state
        .store
        .list_audit(&caller.workspace.id, &filter, &page)
        .await?;
    Ok(Json(json!({ "items": items, "next_cursor": next_cursor })))
}

/// A failed-authentication aggregate in the audit entry's shape.
fn failure_item(f: &AuthFailure) -> Value {
    json!({
        "id": f.id,
        "workspace_id": f.workspace_id,
        "actor": "unauthenticated",
        "action": AUTH_FAILED,
        "target_type": "key",
        "target_id": f.key_display,
        "changes": {},
        "source_ip": f.source_ip,
        "user_agent": null,
        "request_id": null,
        "at": f.first_seen,
        "code": f.code,
        "attempts": f.attempts,
        "first_seen": f.first_seen,
        "last_seen": f.last_seen,
    })
}
