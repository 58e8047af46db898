//! `POST /v1/keys/verify`: verify mode. Always answers 200 (the verify call itself worked);
//! `status` in the body is what the caller should answer its own client with, and the
//! `RateLimit-*`/`Retry-After` headers are ready to be copied onto that answer.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use keygate_api::verify::{
    VerifiedIdentity, VerifiedKey, VerifyHeaders, VerifyRequest, VerifyResponse,
};
use keygate_core::verify::Requirement;

use crate::audit::Origin;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::pipeline::Attempt;
use crate::routes::check::{check_for_caller, denial_message, limit_states, refusing_limit};
use crate::state::AppState;
use crate::usage;

/// Header a request uses to pick a stricter named rate policy.
pub use keygate_api::verify::POLICY_HEADER;

/// Check a key for a request, consuming its tokens and cost when admitted. Always 200: the
/// verdict is in the body (`status` is what to answer the end customer with), and the limit
/// headers are ready to be copied onto that answer.
#[utoipa::path(post, path = "/v1/keys/verify", tag = "verify",
    params(VerifyHeaders),
    request_body = VerifyRequest,
    responses((status = 200, description = "The verdict (admitted or refused).", body = VerifyResponse,
        headers(
            ("ratelimit-limit" = u64, description = "When limits were checked: the request limit of the tightest rate window (the one with the fewest requests left)."),
            ("ratelimit-remaining" = u64, description = "When limits were checked: requests left in that window."),
            ("ratelimit-reset" = u64, description = "When limits were checked: seconds until that window has room again."),
            ("retry-after" = u64, description = "When a limit refused the request: seconds to wait before retrying."),
        ))))]
pub async fn verify_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    headers: HeaderMap,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let operation = usage::valid_operation(body.operation)?;
    let source_ip = usage::valid_source_ip(body.source_ip)?;
    usage::valid_project(body.project.as_deref())?;
    let requirement = Requirement {
        project: body.project.as_deref(),
        permissions: &body.permissions,
    };
    let attempt = Attempt::request(body.key.as_deref(), requirement, &headers)
        .spending(body.tokens, body.cost);
    let (checked, code) =
        check_for_caller(&state, &caller, &attempt, origin, operation, source_ip).await?;
    let retry_after = checked.retry_after();
    let outcome = checked.outcome;
    let body = VerifyResponse {
        valid: outcome.denial.is_none(),
        code,
        status: outcome.denial.map_or(200, |d| d.status()),
        message: denial_message(&outcome),
        key: outcome.key.as_deref().map(|found| VerifiedKey {
            identity: outcome.identity.as_deref().map(|i| VerifiedIdentity {
                id: i.id.clone(),
                external_id: i.external_id.clone(),
                metadata: i.metadata.clone(),
            }),
            ..VerifiedKey::from(found)
        }),
        limit: outcome.decision.as_ref().and_then(refusing_limit),
        limits: outcome
            .decision
            .map(|d| limit_states(&d.limits))
            .unwrap_or_default(),
        retry_after,
    };
    Ok((checked.headers, Json(body)))
}
