//! `GET /v1/requests/{request_id}`: which key made a request, from the request log — the
//! answer to a support ticket that quotes a `request-id`. Any member may read it; another
//! workspace's request, one past the log's retention, and one whose key was never identified
//! (those are only counted, see `usage.rs`) all answer 404. A request shows up with the next
//! usage flush, within a second by default.

use axum::extract::State;
use axum::Json;
use keygate_core::ids;
use keygate_store::RequestLogEntry;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::state::AppState;

pub async fn get_request(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(request_id): ApiPath<String>,
) -> Result<Json<RequestLogEntry>, ApiError> {
    if !ids::looks_like("req", &request_id) {
        return Err(ApiError::NotFound("request"));
    }
    state
        .store
        .request_log_entry(&caller.workspace.id, &request_id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("request"))
}
