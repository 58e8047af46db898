//! `GET /v1/requests/{request_id}`: which key made a request, from the request log — the
//! answer to a support ticket that quotes a `request-id`. Any member may read it; another
//! workspace's request, one past the log's retention, and one whose key was never identified
//! (those are only counted, see `usage/aggregate.rs`) all answer 404. A request shows up with
//! the next usage flush, within a second by default.

use axum::extract::State;
use axum::Json;
use keygate_api::usage::RequestLogEntry;
use keygate_api::verdict::Outcome;
use keygate_core::ids;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::state::AppState;
use crate::usage::UsageOutcome;

/// Which key made a request, by the `request-id` its answer carried.
#[utoipa::path(get, path = "/v1/requests/{request_id}", tag = "usage",
    params(("request_id" = String, Path, description = "The `request-id` of the answer (`req_…`).")),
    responses((status = 200, description = "The request, as the request log keeps it.", body = RequestLogEntry)))]
pub async fn get_request(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(request_id): ApiPath<String>,
) -> Result<Json<RequestLogEntry>, ApiError> {
    if !ids::looks_like("req", &request_id) {
        return Err(ApiError::NotFound("request"));
    }
    let entry = state
        .store
        .request_log_entry(&caller.workspace.id, &request_id)
        .await?
        .ok_or(ApiError::NotFound("request"))?;
    // Every outcome the log holds was written by `UsageOutcome::as_str`; one this version
    // cannot name was written by a newer version.
    let outcome = UsageOutcome::parse(&entry.outcome)
        .map(Outcome::from)
        .ok_or_else(|| {
            ApiError::internal(format!(
                "the request log holds an unknown outcome {:?}",
                entry.outcome
            ))
        })?;
    Ok(Json(RequestLogEntry {
        request_id: entry.request_id,
        workspace_id: entry.workspace_id,
        key_id: entry.key_id,
        key_display: entry.key_display,
        at: entry.at,
        operation: entry.operation,
        project: entry.project,
        outcome,
        tokens: entry.tokens,
        cost: entry.cost,
        source_ip: entry.source_ip,
    }))
}
