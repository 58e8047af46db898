//! Limits outside a plain verify: `GET /v1/keys/{id}/limits` (consumption against every limit),
//! `POST /v1/usage` (actual usage reported after the fact) and the reserve → settle flow for
//! callers that only know the cost once the work is done.
//!
//! A reservation id given to clients is the limiter's random id and the key's id,
//! `rsv_<32 hex>.<key id>`. Settling or releasing hands the limiter the owner it must match:
//! the caller's workspace and that key. So another workspace's token, or a guessed or altered
//! id, gets the 404 an unknown id gets, and the check lives in the limiter, not only here.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use keygate_api::limits::{
    CreateReservation, KeyLimitStatus, Released, ReportUsage, Reservation, SettleReservation,
    Settled, UsageReported,
};
use keygate_api::verify::VerifyHeaders;
use keygate_core::Micros;
use keygate_limits::Subject;

use crate::audit::Origin;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::pipeline::{self, Attempt, Consumption};
use crate::routes::check::{check_for_caller, denial_message, limit_states, refusing_limit};
use crate::routes::common::load_key;
use crate::state::AppState;
use crate::usage::{self, UsageEvent, UsageOutcome};

/// Longest a reservation may stay open.
const MAX_RESERVATION_SECS: i64 = 3600;

/// The key's consumption against every limit that applies to it, without consuming anything.
#[utoipa::path(get, path = "/v1/keys/{id}/limits", tag = "keys",
    params(("id" = String, Path, description = "The key's id (`key_…`).")),
    responses((status = 200, description = "Every limit of the key, with what is used and what remains.", body = KeyLimitStatus)))]
pub async fn get_key_limits(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<KeyLimitStatus>, ApiError> {
    let key = load_key(&state, &caller, &id).await?;
    if key.legacy && key.identity_id.is_none() {
        return Ok(Json(KeyLimitStatus {
            key_id: key.id,
            legacy: true,
            limits: Vec::new(),
        }));
    }
    let found = keygate_core::model::KeyMatch {
        key,
        secret_expires_at: None,
    };
    let attempt = Attempt {
        key: None,
        requirement: Default::default(),
        policy: None,
        tokens: 0,
        cost: Micros::ZERO,
        consumption: Consumption::Admit,
    };
    let identity = pipeline::key_identity(&state, &found.key).await?;
    let admission = pipeline::admission(&caller.workspace, &found, identity.as_deref(), &attempt)?;
    let limits = state.limiter.status(&admission).await?;
    Ok(Json(KeyLimitStatus {
        key_id: found.key.id,
        legacy: found.key.legacy,
        limits: limit_states(&limits),
    }))
}

/// Usage that happened: added to the key's budgets unconditionally (it was already spent), so
/// later requests are refused once a budget is used up.
#[utoipa::path(post, path = "/v1/usage", tag = "usage",
    request_body = ReportUsage,
    responses(
        (status = 200, description = "The usage was recorded.", body = UsageReported)
    ))]
pub async fn report_usage(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiJson(body): ApiJson<ReportUsage>,
) -> Result<Json<UsageReported>, ApiError> {
    let operation = usage::valid_operation(body.operation)?;
    let key = load_key(&state, &caller, &body.key_id).await?;
    // Legacy keys have no limits of their own, but their spend still counts against the
    // workspace's credits, as in verify mode and the gateway.
    state
        .limiter
        .record(
            &Subject::new(key.workspace_id.as_str(), key.id.as_str())
                .with_identity(key.identity_id.as_deref()),
            body.tokens,
            body.cost,
        )
        .await?;
    pipeline::watch_spending(
        &state,
        caller.workspace.clone(),
        key.id.clone(),
        Some(key.clone()),
    );
    // Tokens and cost for the usage report; not a request of its own (the verification
    // before it was counted).
    state.usage.record(UsageEvent {
        request_id: origin.request_id,
        workspace_id: key.workspace_id.clone(),
        key_id: Some(key.id.clone()),
        key_display: Some(key.display.clone()),
        at: state.clock.now(),
        operation,
        project: None,
        outcome: UsageOutcome::Reported,
        tokens: body.tokens,
        cost: body.cost,
        source_ip: origin.source_ip,
    });
    Ok(Json(UsageReported {
        recorded: true,
        key_id: key.id,
        tokens: body.tokens,
        cost: body.cost,
    }))
}

/// Verify a key and hold the worst case it may spend, in one step; settle the actual amount
/// once the work is done, or release the hold (it lapses by itself after `ttl`).
#[utoipa::path(post, path = "/v1/reservations", tag = "reservations",
    request_body = CreateReservation,
    params(VerifyHeaders),
    responses((status = 200,
        description = "The verdict: `valid` with a `reservation_id` to settle or release, or the refusal and the status to answer the end customer with.",
        body = Reservation,
        headers(
            ("RateLimit-Limit" = u64, description = "The tightest rate window's limit (the one with the fewest requests remaining), when the key has rate windows."),
            ("RateLimit-Remaining" = u64, description = "Requests remaining in that window."),
            ("RateLimit-Reset" = u64, description = "Seconds until that window's oldest counted request leaves it."),
            ("Retry-After" = u64, description = "Seconds until a refused request may be retried, when a limit refused it and says when.")))))]
pub async fn create_reservation(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<CreateReservation>,
) -> Result<(axum::http::HeaderMap, Json<Reservation>), ApiError> {
    let operation = usage::valid_operation(body.operation)?;
    let source_ip = usage::valid_source_ip(body.source_ip)?;
    usage::valid_project(body.project.as_deref())?;
    let ttl = keygate_core::expiry::parse_duration(body.ttl.as_deref().unwrap_or("5m"))
        .map_err(|e| ApiError::invalid(format!("ttl: {e}")))?;
    if ttl.num_seconds() > MAX_RESERVATION_SECS {
        return Err(ApiError::invalid("ttl can be at most 1h"));
    }
    let requirement = keygate_core::verify::Requirement {
        project: body.project.as_deref(),
        permissions: &body.permissions,
    };
    let attempt = Attempt::request(body.key.as_deref(), requirement, &headers)
        .spending(body.tokens, body.cost)
        .reserving(Duration::from_secs(ttl.num_seconds().max(1) as u64));
    // A hold is not spending: `check` counts the request, not its tokens and cost (settled
    // amounts reach the budgets through the limiter, not the usage rollups).
    let (checked, code) =
        check_for_caller(&state, &caller, &attempt, origin, operation, source_ip).await?;
    let retry_after = checked.retry_after();
    let outcome = &checked.outcome;
    let reservation_id = outcome
        .decision
        .as_ref()
        .and_then(|d| d.reservation_id.as_ref())
        .zip(outcome.key.as_ref())
        .map(|(id, found)| format!("{id}.{}", found.key.id));
    let body = Reservation {
        valid: outcome.denial.is_none(),
        code,
        status: outcome.denial.map_or(200, |d| d.status()),
        message: denial_message(outcome),
        limit: outcome.decision.as_ref().and_then(refusing_limit),
        key_id: outcome.key.as_ref().map(|k| k.key.id.clone()),
        reservation_id,
        limits: outcome
            .decision
            .as_ref()
            .map(|d| limit_states(&d.limits))
            .unwrap_or_default(),
        retry_after,
    };
    Ok((checked.headers, Json(body)))
}

/// Charge the amount actually spent and drop the hold.
#[utoipa::path(post, path = "/v1/reservations/{id}/settle", tag = "reservations",
    params(("id" = String, Path, description = "The `reservation_id` a reservation answered with (`rsv_…`).")),
    request_body = SettleReservation,
    responses((status = 200, description = "The amount was charged and the hold dropped.", body = Settled)))]
pub async fn settle_reservation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SettleReservation>,
) -> Result<Json<Settled>, ApiError> {
    let (owner, inner) = reservation_owner(&caller, &id)?;
    if !state
        .limiter
        .settle(&owner, inner, body.tokens, body.cost)
        .await?
    {
        return Err(ApiError::NotFound("open reservation"));
    }
    pipeline::watch_spending(&state, caller.workspace.clone(), owner.key_id.clone(), None);
    Ok(Json(Settled {
        settled: true,
        tokens: body.tokens,
        cost: body.cost,
    }))
}

/// Drop the hold without spending.
#[utoipa::path(post, path = "/v1/reservations/{id}/release", tag = "reservations",
    params(("id" = String, Path, description = "The `reservation_id` a reservation answered with (`rsv_…`).")),
    responses((status = 200, description = "The hold was dropped without spending.", body = Released)))]
pub async fn release_reservation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Released>, ApiError> {
    let (owner, inner) = reservation_owner(&caller, &id)?;
    if !state.limiter.release(&owner, inner).await? {
        return Err(ApiError::NotFound("open reservation"));
    }
    Ok(Json(Released { released: true }))
}

/// Splits a client's reservation id into the owner it claims (always the caller's own
/// workspace) and the limiter's id. Anything malformed is the same 404 as an unknown id.
fn reservation_owner<'a>(caller: &Caller, id: &'a str) -> Result<(Subject, &'a str), ApiError> {
    id.rsplit_once('.')
        .filter(|(_, key_id)| {
            !key_id.is_empty()
                && key_id.len() <= 64
                && key_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .map(|(inner, key_id)| (Subject::new(caller.workspace.id.as_str(), key_id), inner))
        .ok_or(ApiError::NotFound("open reservation"))
}
