//! The OpenAI-compatible AI gateway: `POST /v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings` and `GET /v1/models`, in the OpenAI wire format, so the official clients
//! work unchanged with a Keygate key as their API key and Keygate as their base URL.
//!
//! One request goes: authenticate and authorize the key from the headers alone (a bad key never
//! gets its body read) → read the body → pick providers by routing rule → price its worst case
//! under the dearest model it could be sent to → the pipeline again, reserving that worst case
//! (so concurrent requests cannot overspend a budget by more than what is in flight) → try the
//! providers in turn → stream the answer through, metered → settle the reservation to the
//! provider's `usage`, priced by the model actually called.
//!
//! The worst case is an upper bound: the request body's length in bytes as input tokens
//! (byte-level tokenizers emit at most one token per byte) plus [`IMAGE_PART_TOKENS`] for each
//! image part of a chat message (an image costs tokens its URL's bytes do not show), plus the
//! output bound times `n` (or `best_of`) times the prompts of a completion request. The output
//! bound is the client's `max_tokens` / `max_completion_tokens`, else `default_max_tokens`,
//! which is then sent to the provider as `max_tokens` so the provider's own default never
//! applies. What cannot be bounded from the request (audio and file parts, part types the
//! gateway does not know, a limit or count of 0) is refused with 400 before any provider sees
//! it. The worst case is only held, never charged, unless the answer never shows its usage.
//! The reservation is guarded by [`Settlement`], which settles it exactly once on every way
//! out, a dropped handler included.
//!
//! A provider is abandoned for the next one only when it cannot have billed the request: when
//! the connection could not be made (nothing was sent), or when it answered 429 or 5xx. A
//! timeout or a connection broken after it was made may come after the provider read the
//! request and while it generates — and bills — the answer: the client gets 504 / 502, is
//! charged the worst case at that provider's price, and the request is not sent to another
//! provider to be billed twice. From the first byte to the client on, the request belongs to
//! that provider.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use http_body_util::BodyExt;
use keygate_api::ai::{
    ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ListObject, Model, ModelList,
    ModelObject, ProviderAnswer,
};
use keygate_api::verify::VerifyHeaders;
use keygate_core::verify::Requirement;
use serde_json::{Map, Value};

use super::config::{AiConfig, Price};
use super::headers::presented_key;
use super::metering::{MeteredBody, Settlement, WorstCase};
use super::proxy::{error_chain, idle_timeout};
use super::routing::{candidates, Candidate};
use super::runtime::Gateway;
use crate::error::ApiError;
use crate::extract::peer_ip;
use crate::pipeline::{self, Admitted, Attempt, Consumption, Door};
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::usage::UsageContext;

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

/// Chat completions in OpenAI's format, by the provider the key's routing rule picks.
// The error answers of the AI endpoints are documented together, in `gateway::document`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "ai gateway",
    params(VerifyHeaders),
    request_body = ChatCompletionRequest,
    responses((status = 200, description = "The provider's answer as it is: a `chat.completion`, or with `stream: true` server-sent `chat.completion.chunk` events.",
        content((ProviderAnswer = "application/json"), (String = "text/event-stream")))))]
pub async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    forward(state, Endpoint::ChatCompletions, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Completions (OpenAI's legacy format), by the provider the key's routing rule picks.
#[utoipa::path(post, path = "/v1/completions", tag = "ai gateway",
    params(VerifyHeaders),
    request_body = CompletionRequest,
    responses((status = 200, description = "The provider's answer as it is: a `text_completion`, or with `stream: true` server-sent events.",
        content((ProviderAnswer = "application/json"), (String = "text/event-stream")))))]
pub async fn completions(State(state): State<AppState>, request: Request) -> Response {
    forward(state, Endpoint::Completions, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Embeddings in OpenAI's format, by the provider the key's routing rule picks.
#[utoipa::path(post, path = "/v1/embeddings", tag = "ai gateway",
    params(VerifyHeaders),
    request_body = EmbeddingRequest,
    responses((status = 200, description = "The provider's answer as it is: an embedding list.", body = ProviderAnswer)))]
pub async fn embeddings(State(state): State<AppState>, request: Request) -> Response {
    forward(state, Endpoint::Embeddings, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Every model the configured providers serve. It is a request made with a key like any
/// other: authenticated and counted on the key's rate windows.
#[utoipa::path(get, path = "/v1/models", tag = "ai gateway",
    params(VerifyHeaders),
    responses((status = 200, description = "The models.", body = ModelList)))]
pub async fn list_models(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let (gateway, ai) = ai_config(&state)?;
        let (parts, _) = request.into_parts();
        let key = presented_key(&parts.headers);
        let requirement = Requirement {
            project: ai.project.as_deref(),
            permissions: &ai.permissions,
        };
        let attempt = Attempt::request(key, requirement, &parts.headers);
        let usage = usage_context(&parts, "/v1/models", &ai, key);
        let checked =
            pipeline::check(&state, Door::Route(&ai.workspaces), &attempt, &usage).await?;
        let headers = match checked.admitted() {
            Ok(admitted) => admitted.headers,
            Err(refusal) => return Ok(refusal),
        };
        let data: Vec<Model> = ai
            .models()
            .into_iter()
            .map(|(id, owner)| Model {
                created: 0,
                id: id.to_owned(),
                object: ModelObject::Model,
                owned_by: owner.to_owned(),
            })
            .collect();
        drop(gateway);
        let list = ModelList {
            data,
            object: ListObject::List,
        };
        Ok::<_, ApiError>((headers, Json(list)).into_response())
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
    UsageContext::new(
        parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        operation.to_owned(),
        ai.project.clone(),
        peer_ip(&parts.extensions),
        key,
    )
}

async fn forward(
    state: AppState,
    endpoint: Endpoint,
    request: Request,
) -> Result<Response, ApiError> {
    let (gateway, ai) = ai_config(&state)?;
    let (parts, body) = request.into_parts();
    let key = presented_key(&parts.headers);
    let usage = usage_context(&parts, endpoint.operation(), &ai, key);
    let requirement = Requirement {
        project: ai.project.as_deref(),
        permissions: &ai.permissions,
    };
    let attempt = Attempt {
        consumption: Consumption::Authenticate,
        ..Attempt::request(key, requirement, &parts.headers)
    };

    // The key first, from the headers alone: without a good key not a byte of the body is
    // read (nor asked for, with `Expect: 100-continue`).
    let door = Door::Route(&ai.workspaces);
    let found = match pipeline::check(&state, door, &attempt, &usage)
        .await?
        .admitted()
    {
        Ok(admitted) => admitted.key,
        Err(refusal) => return Ok(refusal),
    };

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
    let output_tokens = bound_output(endpoint, &mut request_json, ai.default_max_tokens)?;
    let input_tokens = bound_input(endpoint, &request_json, body.len())?;
    let streaming =
        endpoint != Endpoint::Embeddings && request_json.get("stream") == Some(&Value::Bool(true));

    // Where it may go, and so what it may cost: the dearest model it could be sent to.
    let rule = gateway.rule_for(state.store.as_ref(), &found).await?;
    let targets = priced(
        &ai,
        candidates(&ai, rule.as_deref(), &model, rand::random::<f64>()),
    );
    let Some(worst_cost) = targets
        .iter()
        .map(|(_, price)| price.cost(input_tokens, output_tokens))
        .max()
    else {
        return Err(ApiError::ModelNotFound(model));
    };
    let worst = WorstCase {
        input_tokens,
        output_tokens,
        cost: worst_cost,
    };

    let attempt = attempt
        .spending(worst.tokens(), worst.cost)
        .reserving(ai.reservation_ttl);
    // An admitted reservation is not recorded by the check: the settlement records it, once,
    // with what is charged.
    let Admitted {
        key: found,
        reservation_id,
        headers: mut limit_headers,
    } = match pipeline::check(&state, door, &attempt, &usage)
        .await?
        .admitted()
    {
        Ok(admitted) => admitted,
        Err(refusal) => return Ok(refusal),
    };
    // From here on every way out settles this exactly once, dropped handler included.
    let mut settlement = Settlement::new(
        state.clone(),
        found,
        reservation_id,
        worst,
        ai.reservation_ttl,
        usage,
    );

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
    for (i, (target, price)) in targets.iter().enumerate() {
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
        settlement.sending(*price);
        let answer = match tokio::time::timeout(provider.timeout, upstream.send()).await {
            Ok(Ok(answer)) => answer,
            // The connection could not be made (refused, name, TLS, connect timeout): not a
            // byte of the request left, so nothing can be billed and the next provider may
            // serve it.
            Ok(Err(e)) if e.is_connect() => {
                settlement.not_sent();
                let cause = error_chain(&e);
                tracing::warn!(provider = %provider.name, error = %cause, "AI provider unreachable");
                failure = if e.is_timeout() {
                    ApiError::UpstreamTimeout(provider.name.clone())
                } else {
                    ApiError::UpstreamUnavailable(format!("{}: {cause}", provider.name))
                };
                continue;
            }
            // Anything else may have reached the provider, which may be generating, and will
            // bill, the whole answer: charged the worst case at this provider's price, and not
            // sent to a second provider to be billed again.
            Ok(Err(e)) => {
                let cause = error_chain(&e);
                let error = if e.is_timeout() {
                    tracing::warn!(provider = %provider.name, error = %cause, "AI provider timed out; charging the worst case");
                    ApiError::UpstreamTimeout(provider.name.clone())
                } else {
                    tracing::warn!(provider = %provider.name, error = %cause, "AI provider failed mid-request; charging the worst case");
                    ApiError::UpstreamUnavailable(format!("{}: {cause}", provider.name))
                };
                settlement.charge_unanswered().await;
                return Err(error);
            }
            Err(_) => {
                tracing::warn!(provider = %provider.name, "AI provider timed out; charging the worst case");
                settlement.charge_unanswered().await;
                return Err(ApiError::UpstreamTimeout(provider.name.clone()));
            }
        };
        let status = answer.status();
        if (status.as_u16() == 429 || status.is_server_error()) && i < last {
            // It answered, and an answer that refuses is not billed.
            settlement.not_sent();
            tracing::warn!(provider = %provider.name, status = status.as_u16(), "AI provider refused; trying the next one");
            continue;
        }
        limit_headers.insert(
            "keygate-provider",
            HeaderValue::from_str(&provider.name).unwrap_or(HeaderValue::from_static("-")),
        );
        let mut headers = answer_headers(answer.headers());
        let chunks = idle_timeout(answer.bytes_stream(), provider.timeout).boxed();
        let body = if !status.is_success() {
            // Nothing billable happened; the provider's error goes to the client as it is.
            settlement.release().await;
            Body::from_stream(chunks)
        } else if streaming {
            // Taking out the usage chunk changes the length.
            headers.remove(header::CONTENT_LENGTH);
            Body::from_stream(MeteredBody::sse(chunks, !client_wants_usage, settlement))
        } else {
            Body::from_stream(MeteredBody::json(chunks, settlement))
        };
        let mut response = Response::new(body);
        *response.status_mut() =
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        *response.headers_mut() = headers;
        response.headers_mut().extend(limit_headers);
        return Ok(response);
    }
    // Only connection errors get here: no provider saw the request.
    settlement.release().await;
    Err(failure)
}

/// Reads the fields that bound what a request can generate and returns the output tokens to
/// reserve, making sure the provider is held to that bound: when the client set none, the
/// reserved `default_max_tokens` is sent as `max_tokens` (otherwise the provider's own
/// default, up to the model's whole context, would apply to a hold that does not cover it).
///
/// The client's own limit is kept as written, and reserved whole: a limit the key's budgets
/// cannot hold is refused with the budget's code rather than clamped, so a client never gets
/// an answer cut shorter than it asked for without being told. With both `max_tokens` and
/// `max_completion_tokens`, the larger is reserved, whichever the provider reads; `n` and
/// `best_of` (completions a provider generates, and bills, server-side) multiply it, and so
/// does the number of prompts of a completion request (each prompt gets its own `n` answers).
fn bound_output(
    endpoint: Endpoint,
    request: &mut Map<String, Value>,
    default_max_tokens: u64,
) -> Result<u64, ApiError> {
    if endpoint == Endpoint::Embeddings {
        return Ok(0);
    }
    let mut limit: Option<u64> = None;
    for field in ["max_tokens", "max_completion_tokens"] {
        if let Some(n) = whole_number(request, field)? {
            limit = Some(limit.map_or(n, |l| l.max(n)));
        }
    }
    let mut choices = 1;
    for field in ["n", "best_of"] {
        if let Some(n) = whole_number(request, field)? {
            choices = choices.max(n);
        }
    }
    let prompts = match endpoint {
        Endpoint::Completions => prompt_count(request.get("prompt"))?,
        _ => 1,
    };
    let per_choice = match limit {
        Some(n) => n,
        None => {
            request.insert("max_tokens".into(), Value::from(default_max_tokens));
            default_max_tokens
        }
    };
    Ok(per_choice.saturating_mul(choices).saturating_mul(prompts))
}

/// A field that bounds the output must be a whole number of at least 1 when present. `1e6`,
/// `2.5`, `-1` or `"100"` are refused: a lenient provider may read them as a number we did not
/// reserve. So is `0`: a provider may read it as "not set" and apply its own default, which
/// nobody reserved (and a limit or count of 0 asks for nothing a provider would do). `null`
/// means "not set" and is removed, so the bound the gateway adds is the only one.
fn whole_number(request: &mut Map<String, Value>, field: &str) -> Result<Option<u64>, ApiError> {
    match request.get(field) {
        None => Ok(None),
        Some(Value::Null) => {
            request.remove(field);
            Ok(None)
        }
        Some(value) => {
            // JSON does not tell 2 from 2.0; a whole-number float is the same bound, and is
            // forwarded as an integer so the provider reads exactly what was reserved.
            let whole = value.as_u64().or_else(|| {
                value
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f < 9_007_199_254_740_992.0)
                    .map(|f| f as u64)
            });
            match whole.filter(|n| *n >= 1) {
                Some(n) => {
                    request.insert(field.to_owned(), Value::from(n));
                    Ok(Some(n))
                }
                None => Err(ApiError::invalid(format!(
                    "`{field}` must be a whole number of at least 1: it bounds what the request \
                     may generate, which is reserved against the key's budgets before it is sent."
                ))),
            }
        }
    }
}

/// How many prompts a completion request's `prompt` holds; each is answered `n` times. A
/// string, or one array of token ids, is one prompt; an array of strings or of token arrays is
/// one prompt per element (an empty one is counted as one: the provider refuses it or answers
/// its default prompt). Absent or `null`, the provider uses its default prompt: one. Anything
/// else is refused, as the gateway could not say how many answers it asks for.
fn prompt_count(prompt: Option<&Value>) -> Result<u64, ApiError> {
    let refuse = || {
        ApiError::invalid(
            "`prompt` must be a string, an array of strings, an array of token ids or an array \
             of token-id arrays: each prompt is answered, and reserved for, separately.",
        )
    };
    match prompt {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(1),
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => Ok(1),
        Some(Value::Array(items)) => {
            let prompts = items
                .iter()
                .all(|item| match item {
                    Value::String(_) => true,
                    Value::Array(tokens) => tokens.iter().all(Value::is_number),
                    _ => false,
                })
                .then_some(items.len() as u64)
                .ok_or_else(refuse)?;
            Ok(prompts.max(1))
        }
        Some(_) => Err(refuse()),
    }
}

/// Input tokens reserved for each image part of a chat message, whatever its URL or `detail`.
///
/// An image is billed by its pixels, not by the bytes of its URL, so the body's length does
/// not bound it. 4,000 covers the largest image (high detail, after the provider's own
/// downscaling) of the token-priced vision models: about 1,450 tokens on gpt-4o (85 + 8 tiles
/// × 170), 1,300 on o1, about 3,800 on gpt-4.1-nano (1,536 patches × 2.46), about 1,600 on
/// Claude and a few hundred on Gemini. One known model counts far more: gpt-4o-mini bills an
/// image as up to about 48,000 tokens (its token price is ~33 times lower, so an image costs
/// what it does on gpt-4o); there the provider's reported usage is charged as it is and the
/// key's budget may go over by that one request (see `metering::charge`). A larger constant
/// would hold, and charge on a timeout, ten times too much for every other model.
const IMAGE_PART_TOKENS: u64 = 4_000;

/// The input tokens to reserve: the body's bytes (byte-level tokenizers emit at most one token
/// per byte of text) plus [`IMAGE_PART_TOKENS`] for each image part of a chat message.
///
/// Content parts the gateway cannot bound from the request are refused rather than guessed:
/// `input_audio` (billed by its duration, at audio-token prices the gateway's prices do not
/// have), `file` (a `file_id` names an upload of any size, a PDF becomes text and an image per
/// page) and any type it does not know (a new kind of input, whose cost nobody here knows).
/// `text` and `refusal` parts are text, bounded by their bytes.
fn bound_input(
    endpoint: Endpoint,
    request: &Map<String, Value>,
    body_len: usize,
) -> Result<u64, ApiError> {
    let mut images: u64 = 0;
    if endpoint == Endpoint::ChatCompletions {
        let messages = request.get("messages").and_then(Value::as_array);
        let parts = messages
            .into_iter()
            .flatten()
            .filter_map(|message| message.get("content").and_then(Value::as_array))
            .flatten();
        for part in parts {
            match part.get("type").and_then(Value::as_str) {
                Some("text" | "refusal") => {}
                Some("image_url") => images = images.saturating_add(1),
                Some(kind) => {
                    return Err(ApiError::invalid(format!(
                        "Content parts of type `{kind}` are not accepted by this gateway: their \
                         cost cannot be bounded from the request, and every request reserves its \
                         worst case before it is sent. Use `text` or `image_url` parts."
                    )))
                }
                None => {
                    return Err(ApiError::invalid(
                        "Every content part must be an object with a `type` (`text` or \
                         `image_url`): the gateway bounds each part's cost before the request \
                         is sent.",
                    ))
                }
            }
        }
    }
    Ok((body_len as u64).saturating_add(images.saturating_mul(IMAGE_PART_TOKENS)))
}

/// The candidates whose upstream model (after the rule's or the provider's mapping) has a
/// price, with that price: a request is charged by the model actually called. A candidate
/// without one (a rule saved before the config changed) is skipped, never called for free.
fn priced<'a>(ai: &AiConfig, targets: Vec<Candidate<'a>>) -> Vec<(Candidate<'a>, Price)> {
    targets
        .into_iter()
        .filter_map(|target| match ai.prices.get(&target.model) {
            Some(price) => Some((target, *price)),
            None => {
                tracing::warn!(provider = %target.provider.name, model = %target.model, "an AI request would call a model without a price; that provider is skipped");
                None
            }
        })
        .collect()
}

/// Response headers from a provider that may reach the client: what describes the body, and
/// `retry-after` on a refusal. Everything else — `openai-organization`, `openai-project`,
/// `x-ratelimit-*`, `set-cookie`, request ids, server names — describes the operator's account
/// at the provider and stays here. An allow-list, on every path, so a header a provider adds
/// tomorrow is not passed on by default.
fn answer_headers(upstream: &HeaderMap) -> HeaderMap {
    const PASSED: [header::HeaderName; 5] = [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::CACHE_CONTROL,
        header::RETRY_AFTER,
    ];
    let mut headers = HeaderMap::new();
    for name in PASSED {
        for value in upstream.get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}
