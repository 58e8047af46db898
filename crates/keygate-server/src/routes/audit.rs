//! `GET /v1/audit`: the workspace's audit trail, newest first, paged by cursor. Any member may
//! read it.
//!
//! Management changes are written with their audit row in the same transaction (see
//! `keygate-store`). Failed authentication attempts are a separate, aggregated record (one row
//! per display form × source × code × hour with a count, see `usage/aggregate.rs`); they are listed
//! with `action=auth.failed`, in the same item shape so one client renders both, with the
//! extra fields `code`, `attempts`, `first_seen` and `last_seen`. Filters combine as AND, so
//! `key_id` or `actor` with `action=auth.failed` matches nothing (an empty page, not an error).

use axum::extract::State;
use axum::Json;
use keygate_api::audit::{AuditAction, AuditItem, AuditPage, AuditParams, TargetType};
use keygate_api::verdict::Verdict;
use keygate_core::Denial;
use keygate_store::{AuditEntry, AuditFilter, AuthFailure, AuthFailureFilter, Page};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::common::page_request;
use crate::state::AppState;

/// The workspace's audit trail, newest first, filtered and paged by cursor; or, with
/// `action=auth.failed`, the failed authentication attempts with customers' keys.
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(AuditParams),
    responses((status = 200, description = "A page of the audit trail.", body = AuditPage)))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let page = page_request(params.limit, params.cursor)?;
    if params.action == Some(AuditAction::AuthFailed) {
        // Filters combine as AND. A failed attempt has no actor (it is shown as
        // `unauthenticated`) and no key id (it is listed by the display form of what was
        // presented), so either filter leaves nothing.
        if params.key_id.is_some() || params.actor.is_some() {
            return Ok(Json(AuditPage {
                items: Vec::new(),
                next_cursor: None,
            }));
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
        return Ok(Json(AuditPage {
            items: failures
                .items
                .into_iter()
                .map(failure_item)
                .collect::<Result<_, _>>()?,
            next_cursor: failures.next_cursor,
        }));
    }
    let filter = AuditFilter {
        target_id: params.key_id,
        actor: params.actor,
        action: params.action.map(|a| a.as_str().to_owned()),
        since: params.since,
        until: params.until,
    };
    let Page { items, next_cursor } = state
        .store
        .list_audit(&caller.workspace.id, &filter, &page)
        .await?;
    Ok(Json(AuditPage {
        items: items
            .into_iter()
            .map(entry_item)
            .collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

/// A stored audit entry as the answer shows it. Every action and target type the store holds
/// was written by this server's handlers; one this version cannot name was written by a newer
/// version.
fn entry_item(e: AuditEntry) -> Result<AuditItem, ApiError> {
    let unknown = |what: &str, value: &str| {
        ApiError::internal(format!("the audit trail holds an unknown {what} {value:?}"))
    };
    Ok(AuditItem {
        action: AuditAction::parse(&e.action).ok_or_else(|| unknown("action", &e.action))?,
        target_type: TargetType::parse(&e.target_type)
            .ok_or_else(|| unknown("target type", &e.target_type))?,
        id: e.id,
        workspace_id: e.workspace_id,
        actor: e.actor,
        target_id: e.target_id,
        changes: e.changes,
        source_ip: e.source_ip,
        user_agent: e.user_agent,
        request_id: Some(e.request_id),
        at: e.at,
        code: None,
        attempts: None,
        first_seen: None,
        last_seen: None,
    })
}

/// A failed-authentication aggregate in the audit entry's shape.
fn failure_item(f: AuthFailure) -> Result<AuditItem, ApiError> {
    let code = Denial::from_code(&f.code)
        .map(Verdict::from)
        .ok_or_else(|| {
            ApiError::internal(format!(
                "a failed attempt holds an unknown code {:?}",
                f.code
            ))
        })?;
    Ok(AuditItem {
        id: f.id,
        workspace_id: f.workspace_id,
        actor: "unauthenticated".to_owned(),
        action: AuditAction::AuthFailed,
        target_type: TargetType::Key,
        target_id: f.key_display,
        changes: serde_json::Value::Object(serde_json::Map::new()),
        source_ip: f.source_ip,
        user_agent: None,
        request_id: None,
        at: f.first_seen,
        code: Some(code),
        attempts: Some(f.attempts),
        first_seen: Some(f.first_seen),
        last_seen: Some(f.last_seen),
    })
}
