//! The OpenAI-compatible AI gateway: `POST /v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings` and `GET /v1/models`, in the OpenAI wire format, so the official clients
//! work unchanged with a Keygate key as their API key and Keygate as their base URL.
//!
//! One request goes: read the body (a model must be picked) → price its worst case → the
//! pipeline with a reservation of that worst case (so concurrent requests cannot overspend a
//! budget by more than what is in flight) → pick providers by routing rule → try them in turn
//! → stream the answer through, metered → settle the reservation to the provider's `usage`.
//!
//! The worst case is the request body's length in bytes as input tokens (byte-level
//! tokenizers emit at most one token per byte, so it is a true upper bound), plus `max_tokens`
//! (or `max_completion_tokens`, or the configured default) times `n` as output tokens. It is
//! only held, never charged, unless the answer never shows its usage.
//!
//! A provider is abandoned for the next one only before anything was sent to the client: on a
//! connection error, a timeout waiting for its response headers, or a 429 or 5xx status. From
//! the first byte on, the request belongs to that provider.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use http_body_util::BodyExt;
use keygate_core::verify::Requirement;
use keygate_core::Micros;
use serde_json::{json, Map, Value};

use super::config::AiConfig;
use super::metering::{MeteredBody, Settlement};
use super::proxy::{error_chain, idle_timeout, relay};
use super::routing::candidates;
use super::{presented_key, source_ip, strip_hop_by_hop, Gateway, UsageContext};
use crate::error::ApiError;
use crate::pipeline::{self, Attempt, Consumption};
use crate::request_id::RequestId;
use crate::routes::verify::{rate_limit_headers, POLICY_HEADER};
use crate::state::AppState;

/// The AI endpoints that forward a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// Appended to a provider's base URL (which ends in `/v1` for OpenAI itself).
    fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }

    /// Our route, recorded as the usage operation.
    fn operation(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
        }
    }
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    forward(state, Endpoint::ChatCompletions, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/completions`.
pub async fn completions(State(state): State<AppState>, request: Request) -> Response {
    forward(state, Endpoint::Completions, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(state): State<AppState>, request: Request) -> Response {
    forward(state, Endpoint::Embeddings, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /v1/models`: every model the configured providers serve. It is a request made with a
/// key like any other: authenticated and counted on the key's rate windows.
pub async fn list_models(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let (gateway, ai) = ai_config(&state)?;
        let (parts, _) = request.into_parts();
        let key = presented_key(&parts.headers);
        let attempt = Attempt {
            key,
            requirement: Requirement {
                project: ai.project.as_deref(),
                permissions: &ai.permissions,
            },
            policy: parts
                .headers
                .get(POLICY_HEADER)
                .and_then(|v| v.to_str().ok()),
            tokens: 0,
            cost: Micros::ZERO,
            consumption: Consumption::Admit,
        };
        let outcome = pipeline::verify(&state, None, &attempt).await?;
        let usage = usage_context(&parts, "/v1/models", &ai, key);
        usage.record(
            &state,
            outcome.key.as_deref(),
            outcome.denial,
            0,
            Micros::ZERO,
        );
        let mut headers = HeaderMap::new();
        if let Some(decision) = &outcome.decision {
            rate_limit_headers(decision, &mut headers, state.clock.now());
        }
        if let Some(denial) = outcome.denial {
            let retry = outcome.decision.as_ref().and_then(|d| d.retry_after_secs);
            return Ok((headers, ApiError::Denied(denial, retry)).into_response());
        }
        let data: Vec<Value> = ai
            .models()
            .into_iter()
            .map(
                |(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}),
            )
            .collect();
        drop(gateway);
        Ok::<_, ApiError>((headers, Json(json!({"object": "list", "data": data}))).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn ai_config(state: &AppState) -> Result<(Arc<Gateway>, Arc<AiConfig>), ApiError> {
    let gateway = state
        .gateway
        .clone()
        .ok_or_else(|| ApiError::internal("an AI route without a gateway"))?;
    let ai = gateway
        .config
        .ai
        .clone()
        .ok_or_else(|| ApiError::internal("an AI route without [ai] config"))?;
    Ok((gateway, ai))
}

fn usage_context(
    parts: &axum::http::request::Parts,
    operation: &str,
    ai: &AiConfig,
    key: Option<&str>,
) -> UsageContext {
    UsageContext {
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        operation: operation.to_owned(),
        project: ai.project.clone(),
        source_ip: source_ip(&parts.extensions),
        key_display: key.map(keygate_core::key::display_form),
    }
}

async fn forward(
    state: AppState,
    endpoint: Endpoint,
    request: Request,
) -> Result<Response, ApiError> {
    let (gateway, ai) = ai_config(&state)?;
    let (parts, body) = request.into_parts();
    let body = http_body_util::Limited::new(body, ai.max_request_bytes)
        .collect()
        .await
        .map_err(|_| ApiError::RequestTooLarge(ai.max_request_bytes))?
        .to_bytes();
    let mut request_json: Map<String, Value> = serde_json::from_slice(&body).map_err(|_| {
        ApiError::BadJson("The body must be a JSON object in the OpenAI format.".into())
    })?;
    let model = request_json
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::invalid("`model` is required: the name of a model, see GET /v1/models.")
        })?
        .to_owned();
    let price = *ai
        .prices
        .get(&model)
        .ok_or_else(|| ApiError::ModelNotFound(model.clone()))?;
    let streaming =
        endpoint != Endpoint::Embeddings && request_json.get("stream") == Some(&Value::Bool(true));

    let input_tokens = body.len() as u64;
    let output_tokens = if endpoint == Endpoint::Embeddings {
        0
    } else {
        let max = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|field| request_json.get(*field).and_then(Value::as_u64))
            .unwrap_or(ai.default_max_tokens);
        let n = request_json
            .get("n")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1);
        max.saturating_mul(n)
    };
    let worst_tokens = input_tokens.saturating_add(output_tokens);
    let worst_cost = price.cost(input_tokens, output_tokens);

    let key = presented_key(&parts.headers);
    let attempt = Attempt {
        key,
        requirement: Requirement {
            project: ai.project.as_deref(),
            permissions: &ai.permissions,
        },
        policy: parts
            .headers
            .get(POLICY_HEADER)
            .and_then(|v| v.to_str().ok()),
        tokens: worst_tokens,
        cost: worst_cost,
        consumption: Consumption::Reserve {
            ttl: ai.reservation_ttl,
        },
    };
    let outcome = pipeline::verify(&state, None, &attempt).await?;
    let usage = usage_context(&parts, endpoint.operation(), &ai, key);
    let mut limit_headers = HeaderMap::new();
    if let Some(decision) = &outcome.decision {
        rate_limit_headers(decision, &mut limit_headers, state.clock.now());
    }
    let found = match (outcome.denial, outcome.key.clone()) {
        (None, Some(found)) => found,
        (denial, found) => {
            let denial = denial.unwrap_or(keygate_core::Denial::InvalidApiKey);
            usage.record(&state, found.as_deref(), Some(denial), 0, Micros::ZERO);
            let retry = outcome.decision.as_ref().and_then(|d| d.retry_after_secs);
            return Ok((limit_headers, ApiError::Denied(denial, retry)).into_response());
        }
    };
    let settlement = Settlement {
        state: state.clone(),
        found: found.clone(),
        reservation_id: outcome
            .decision
            .as_ref()
            .and_then(|d| d.reservation_id.clone()),
        price,
        worst_tokens,
        worst_cost,
        usage,
    };

    let rule = match gateway.rule_for(&state, &found).await {
        Ok(rule) => rule,
        Err(e) => {
            settlement.release().await;
            return Err(e);
        }
    };
    let targets = candidates(&ai, rule.as_deref(), &model, rand::random::<f64>());
    if targets.is_empty() {
        settlement.release().await;
        return Err(ApiError::ModelNotFound(model));
    }

    // The usage of a streamed answer is only in its last chunk if it is asked for.
    let client_wants_usage = request_json
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        == Some(&Value::Bool(true));
    if streaming {
        let options = request_json
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(options) = options {
            options.insert("include_usage".into(), Value::Bool(true));
        }
    }

    let mut failure = ApiError::UpstreamUnavailable("no provider was tried".into());
    let last = targets.len() - 1;
    for (i, target) in targets.iter().enumerate() {
        let provider = target.provider;
        request_json.insert("model".into(), Value::String(target.model.clone()));
        let upstream_body = serde_json::to_vec(&request_json).map_err(ApiError::internal)?;
        let mut upstream = gateway
            .client
            .post(format!("{}{}", provider.base_url, endpoint.upstream_path()))
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::ACCEPT,
                if streaming {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .body(upstream_body);
        if let Some(api_key) = &provider.api_key {
            upstream = upstream.bearer_auth(api_key.expose());
        }
        let answer = match tokio::time::timeout(provider.timeout, upstream.send()).await {
            Err(_) => {
                tracing::warn!(provider = %provider.name, "AI provider timed out");
                failure = ApiError::UpstreamTimeout(provider.name.clone());
                continue;
            }
            Ok(Err(e)) if e.is_timeout() => {
                tracing::warn!(provider = %provider.name, "AI provider timed out");
                failure = ApiError::UpstreamTimeout(provider.name.clone());
                continue;
            }
            Ok(Err(e)) => {
                let cause = error_chain(&e);
                tracing::warn!(provider = %provider.name, error = %cause, "AI provider unreachable");
                failure = ApiError::UpstreamUnavailable(format!("{}: {cause}", provider.name));
                continue;
            }
            Ok(Ok(answer)) => answer,
        };
        let status = answer.status();
        if (status.as_u16() == 429 || status.is_server_error()) && i < last {
            tracing::warn!(provider = %provider.name, status = status.as_u16(), "AI provider refused; trying the next one");
            continue;
        }
        limit_headers.insert(
            "keygate-provider",
            HeaderValue::from_str(&provider.name).unwrap_or(HeaderValue::from_static("-")),
        );
        if !status.is_success() {
            // Nothing billable happened; the provider's error goes to the client as it is.
            settlement.release().await;
            return Ok(relay(answer, provider.timeout, limit_headers, None));
        }
        let mut headers = answer.headers().clone();
        strip_hop_by_hop(&mut headers);
        headers.remove(header::SET_COOKIE);
        let provider_limits: Vec<_> = headers
            .keys()
            .filter(|n| {
                n.as_str().starts_with("x-ratelimit-")
                    || n.as_str().starts_with("openai-organization")
            })
            .cloned()
            .collect();
        for name in provider_limits {
            headers.remove(name);
        }
        let chunks = idle_timeout(answer.bytes_stream(), provider.timeout).boxed();
        let body = if streaming {
            // Taking out the usage chunk changes the length.
            headers.remove(header::CONTENT_LENGTH);
            MeteredBody::sse(chunks, !client_wants_usage, settlement)
        } else {
            MeteredBody::json(chunks, settlement)
        };
        let mut response = Response::new(Body::from_stream(body));
        *response.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::OK);
        *response.headers_mut() = headers;
        response.headers_mut().extend(limit_headers);
        return Ok(response);
    }
    settlement.release().await;
    Err(failure)
}
