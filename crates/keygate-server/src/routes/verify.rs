//! `POST /v1/keys/verify`: verify mode. Always answers 200 (the verify call itself worked);
//! `status` in the body is what the caller should answer its own client with, and the
//! `RateLimit-*`/`Retry-After` headers are ready to be copied onto that answer.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use keygate_core::limits::KeyLimits;
use keygate_core::model::{KeyMatch, Scope};
use keygate_core::verify::Requirement;
use keygate_core::Micros;
use keygate_limits::{Decision, LimitState};
use serde::{Deserialize, Serialize};

use crate::audit::Origin;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::pipeline::{self, Attempt, Consumption};
use crate::state::AppState;
use crate::usage::{self, CheckContext};

/// Header a request uses to pick a stricter named rate policy.
pub const POLICY_HEADER: &str = "keygate-ratelimit-policy";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    key: Option<String>,
    project: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    /// Tokens to consume with this check.
    #[serde(default)]
    tokens: u64,
    /// Cost (USD) to consume with this check.
    #[serde(default)]
    cost: Micros,
    /// What the caller is doing (its route), recorded with usage; default "verify".
    #[serde(default)]
    operation: Option<String>,
    /// The end customer's IP address, recorded with usage and failed attempts; default: the
    /// address the verify call came from.
    #[serde(default)]
    source_ip: Option<String>,
}

/// The key as the verify response shows it: what the caller needs to serve the request.
#[derive(Serialize)]
pub struct VerifiedKey {
    id: String,
    name: String,
    workspace_id: String,
    environment: String,
    scope: Scope,
    permissions: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    metadata: serde_json::Map<String, serde_json::Value>,
    legacy: bool,
    limits: KeyLimits,
}

impl From<&KeyMatch> for VerifiedKey {
    fn from(found: &KeyMatch) -> Self {
        let k = &found.key;
        VerifiedKey {
            id: k.id.clone(),
            name: k.name.clone(),
            workspace_id: k.workspace_id.clone(),
            environment: k.environment.to_string(),
            scope: k.scope.clone(),
            permissions: k.permissions.clone(),
            expires_at: match (k.expires_at, found.secret_expires_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            metadata: k.metadata.clone(),
            legacy: k.legacy,
            limits: k.limits.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct VerifyResponse {
    valid: bool,
    code: &'static str,
    status: u16,
    message: Option<&'static str>,
    key: Option<VerifiedKey>,
    limits: Vec<LimitState>,
    retry_after: Option<u64>,
}

pub async fn verify_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    headers: HeaderMap,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let operation = usage::valid_operation(body.operation)?;
    let source_ip = usage::valid_source_ip(body.source_ip)?.or(origin.source_ip);
    usage::valid_project(body.project.as_deref())?;
    let policy = headers.get(POLICY_HEADER).and_then(|v| v.to_str().ok());
    let attempt = Attempt {
        key: body.key.as_deref(),
        requirement: Requirement {
            project: body.project.as_deref(),
            permissions: &body.permissions,
        },
        policy,
        tokens: body.tokens,
        cost: body.cost,
        consumption: Consumption::Admit,
    };
    let outcome = pipeline::verify(&state, Some(&caller.workspace), &attempt).await?;
    state.usage.record_check(
        state.clock.now(),
        &CheckContext {
            request_id: &origin.request_id,
            workspace_id: &caller.workspace.id,
            presented: body.key.as_deref(),
            operation: &operation,
            project: body.project.as_deref(),
            source_ip: source_ip.as_deref(),
            tokens: body.tokens,
            cost: body.cost,
        },
        &outcome,
    );
    let retry_after = outcome.decision.as_ref().and_then(|d| d.retry_after_secs);
    let mut response_headers = HeaderMap::new();
    if let Some(decision) = &outcome.decision {
        rate_limit_headers(decision, &mut response_headers, state.clock.now());
    }
    let body = VerifyResponse {
        valid: outcome.denial.is_none(),
        code: outcome.denial.map_or("valid", |d| d.code()),
        status: outcome.denial.map_or(200, |d| d.status()),
        message: outcome.denial.map(|d| d.message()),
        key: outcome.key.as_deref().map(VerifiedKey::from),
        limits: outcome.decision.map(|d| d.limits).unwrap_or_default(),
        retry_after,
    };
    Ok((response_headers, Json(body)))
}

/// `RateLimit-Limit/Remaining/Reset` for the tightest request window (the one with the fewest
/// requests remaining), and `Retry-After` when refused.
pub fn rate_limit_headers(decision: &Decision, headers: &mut HeaderMap, now: DateTime<Utc>) {
    let tightest = decision
        .limits
        .iter()
        .filter(|l| matches!(l.kind, keygate_limits::LimitKind::Rate { .. }))
        .min_by_key(|l| l.remaining);
    if let Some(limit) = tightest {
        let reset = limit
            .reset_at
            .map(|at| ((at - now).num_milliseconds().max(0) as u64).div_ceil(1000))
            .unwrap_or(0);
        headers.insert("ratelimit-limit", HeaderValue::from(limit.limit.max(0)));
        headers.insert(
            "ratelimit-remaining",
            HeaderValue::from(limit.remaining.max(0)),
        );
        headers.insert("ratelimit-reset", HeaderValue::from(reset));
    }
    if let (Some(_), Some(retry)) = (decision.denial, decision.retry_after_secs) {
        headers.insert("retry-after", HeaderValue::from(retry));
    }
}
