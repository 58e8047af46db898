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
use keygate_core::Micros;
use keygate_limits::{LimitState, Subject};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::Origin;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::pipeline::{self, Attempt, Consumption};
use crate::state::AppState;
use crate::usage::{self, CheckContext, UsageEvent};

/// Longest a reservation may stay open.
const MAX_RESERVATION_SECS: i64 = 3600;

#[derive(Serialize)]
pub struct KeyLimitsView {
    key_id: String,
    legacy: bool,
    limits: Vec<LimitState>,
}

pub async fn get_key_limits(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<KeyLimitsView>, ApiError> {
    let key = crate::routes::keys::load_key(&state, &caller, &id).await?;
    if key.legacy {
        return Ok(Json(KeyLimitsView {
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
    let admission = pipeline::admission(&caller.workspace, &found, &attempt)?;
    let limits = state.limiter.status(&admission).await?;
    Ok(Json(KeyLimitsView {
        key_id: found.key.id,
        legacy: false,
        limits,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportUsage {
    key_id: String,
    #[serde(default)]
    tokens: u64,
    #[serde(default)]
    cost: Micros,
    /// The operation the usage belongs to (as given to verify); default "verify".
    #[serde(default)]
    operation: Option<String>,
}

/// Usage that happened: added to the key's budgets unconditionally (it was already spent), so
/// later requests are refused once a budget is used up.
pub async fn report_usage(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiJson(body): ApiJson<ReportUsage>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let operation = usage::valid_operation(body.operation)?;
    let key = crate::routes::keys::load_key(&state, &caller, &body.key_id).await?;
    // Legacy keys have no limits of their own, but their spend still counts against the
    // workspace's credits, as in verify mode and the gateway.
    state
        .limiter
        .record(
            &Subject {
                workspace_id: key.workspace_id.clone(),
                key_id: key.id.clone(),
            },
            body.tokens,
            body.cost,
        )
        .await?;
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
        outcome: usage::REPORTED,
        tokens: body.tokens,
        cost: body.cost,
        source_ip: origin.source_ip,
    });
    Ok(Json(json!({
        "recorded": true,
        "key_id": key.id,
        "tokens": body.tokens,
        "cost": body.cost,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reserve {
    key: Option<String>,
    project: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    /// The worst case to hold.
    #[serde(default)]
    tokens: u64,
    #[serde(default)]
    cost: Micros,
    /// How long to hold before the reservation is released by itself: "60s", "5m"; default 5m.
    ttl: Option<String>,
    /// Recorded with usage, as for verify; default "verify".
    #[serde(default)]
    operation: Option<String>,
    /// The end customer's IP address, as for verify.
    #[serde(default)]
    source_ip: Option<String>,
}

/// `POST /v1/reservations`: verify a key and hold the worst-case amount in one step.
pub async fn create_reservation(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<Reserve>,
) -> Result<(axum::http::HeaderMap, Json<serde_json::Value>), ApiError> {
    let operation = usage::valid_operation(body.operation)?;
    let source_ip = usage::valid_source_ip(body.source_ip)?.or(origin.source_ip);
    usage::valid_project(body.project.as_deref())?;
    let ttl = keygate_core::expiry::parse_duration(body.ttl.as_deref().unwrap_or("5m"))
        .map_err(|e| ApiError::invalid(format!("ttl: {e}")))?;
    if ttl.num_seconds() > MAX_RESERVATION_SECS {
        return Err(ApiError::invalid("ttl can be at most 1h"));
    }
    let policy = headers
        .get(crate::routes::verify::POLICY_HEADER)
        .and_then(|v| v.to_str().ok());
    let attempt = Attempt {
        key: body.key.as_deref(),
        requirement: keygate_core::verify::Requirement {
            project: body.project.as_deref(),
            permissions: &body.permissions,
        },
        policy,
        tokens: body.tokens,
        cost: body.cost,
        consumption: Consumption::Reserve {
            ttl: Duration::from_secs(ttl.num_seconds().max(1) as u64),
        },
    };
    let outcome = pipeline::verify(&state, Some(&caller.workspace), &attempt).await?;
    // A hold is not spending: the request is counted, its tokens and cost are not (settled
    // amounts reach the budgets through the limiter, not the usage rollups).
    state.usage.record_check(
        state.clock.now(),
        &CheckContext {
            request_id: &origin.request_id,
            workspace_id: &caller.workspace.id,
            presented: body.key.as_deref(),
            operation: &operation,
            project: body.project.as_deref(),
            source_ip: source_ip.as_deref(),
            tokens: 0,
            cost: Micros::ZERO,
        },
        &outcome,
    );
    let mut out_headers = axum::http::HeaderMap::new();
    if let Some(decision) = &outcome.decision {
        crate::routes::verify::rate_limit_headers(decision, &mut out_headers, state.clock.now());
    }
    let reservation_id = outcome
        .decision
        .as_ref()
        .and_then(|d| d.reservation_id.as_ref())
        .zip(outcome.key.as_ref())
        .map(|(id, found)| format!("{id}.{}", found.key.id));
    Ok((
        out_headers,
        Json(json!({
            "valid": outcome.denial.is_none(),
            "code": outcome.denial.map_or("valid", |d| d.code()),
            "status": outcome.denial.map_or(200, |d| d.status()),
            "message": outcome.denial.map(|d| d.message()),
            "key_id": outcome.key.as_ref().map(|k| k.key.id.clone()),
            "reservation_id": reservation_id,
            "limits": outcome.decision.as_ref().map(|d| d.limits.clone()).unwrap_or_default(),
            "retry_after": outcome.decision.as_ref().and_then(|d| d.retry_after_secs),
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settle {
    #[serde(default)]
    tokens: u64,
    #[serde(default)]
    cost: Micros,
}

/// `POST /v1/reservations/{id}/settle`: charge the actual amount and drop the hold.
pub async fn settle_reservation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Settle>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (owner, inner) = reservation_owner(&caller, &id)?;
    if !state
        .limiter
        .settle(&owner, inner, body.tokens, body.cost)
        .await?
    {
        return Err(ApiError::NotFound("open reservation"));
    }
    Ok(Json(
        json!({"settled": true, "tokens": body.tokens, "cost": body.cost}),
    ))
}

/// `POST /v1/reservations/{id}/release`: drop the hold without spending.
pub async fn release_reservation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (owner, inner) = reservation_owner(&caller, &id)?;
    if !state.limiter.release(&owner, inner).await? {
        return Err(ApiError::NotFound("open reservation"));
    }
    Ok(Json(json!({"released": true})))
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
