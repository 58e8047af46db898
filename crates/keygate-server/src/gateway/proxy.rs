//! The generic reverse proxy: authenticate the customer's key through the pipeline, answer
//! every refusal here, and forward what is allowed to the route's upstream — method, path,
//! query, headers and body — streaming the body both ways.
//!
//! What the upstream sees differs from what the client sent in exactly these ways: the key
//! (`Authorization`, `x-api-key`) is removed, as are hop-by-hop headers and any `keygate-*`
//! header the client sent (so a client cannot forge its identity); `keygate-key-id`,
//! `keygate-workspace-id`, `keygate-environment`, `keygate-project` (when the route names one)
//! and `request-id` are added; and with `strip_prefix` (the default) the route prefix is cut
//! from the path.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt, TryStreamExt};
use keygate_core::verify::Requirement;
use keygate_core::Micros;

use super::config::ProxyRoute;
use super::{presented_key, source_ip, strip_hop_by_hop, UsageContext};
use crate::error::ApiError;
use crate::pipeline::{self, Attempt, Consumption};
use crate::request_id::RequestId;
use crate::routes::verify::{rate_limit_headers, POLICY_HEADER};
use crate::state::AppState;

/// Handles one request under a proxy prefix.
pub async fn forward(
    State(state): State<AppState>,
    route: Arc<ProxyRoute>,
    request: Request,
) -> Response {
    match forward_inner(&state, &route, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn forward_inner(
    state: &AppState,
    route: &ProxyRoute,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let key = presented_key(&parts.headers);
    let attempt = Attempt {
        key,
        requirement: Requirement {
            project: route.project.as_deref(),
            permissions: &route.permissions,
        },
        policy: parts
            .headers
            .get(POLICY_HEADER)
            .and_then(|v| v.to_str().ok()),
        tokens: 0,
        cost: Micros::ZERO,
        consumption: Consumption::Admit,
    };
    let outcome = pipeline::verify(state, None, &attempt).await?;
    let usage = UsageContext {
        request_id: request_id.clone(),
        operation: route.prefix.clone(),
        project: route.project.clone(),
        source_ip: source_ip(&parts.extensions),
        key_display: key.map(keygate_core::key::display_form),
    };
    usage.record(
        state,
        outcome.key.as_deref(),
        outcome.denial,
        0,
        Micros::ZERO,
    );
    let mut limit_headers = HeaderMap::new();
    if let Some(decision) = &outcome.decision {
        rate_limit_headers(decision, &mut limit_headers, state.clock.now());
    }
    let found = match (outcome.denial, outcome.key) {
        (None, Some(found)) => found,
        (denial, _) => {
            let denial = denial.unwrap_or(keygate_core::Denial::InvalidApiKey);
            let retry = outcome.decision.as_ref().and_then(|d| d.retry_after_secs);
            return Ok((limit_headers, ApiError::Denied(denial, retry)).into_response());
        }
    };

    let url = upstream_url(route, parts.uri.path(), parts.uri.query());
    let mut headers = std::mem::take(&mut parts.headers);
    strip_hop_by_hop(&mut headers);
    headers.remove(axum::http::header::AUTHORIZATION);
    headers.remove("x-api-key");
    let forged: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("keygate-"))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    let key = &found.key;
    insert(&mut headers, "keygate-key-id", &key.id);
    insert(&mut headers, "keygate-workspace-id", &key.workspace_id);
    insert(
        &mut headers,
        "keygate-environment",
        key.environment.as_str(),
    );
    if let Some(project) = &route.project {
        insert(&mut headers, "keygate-project", project);
    }
    insert(&mut headers, "request-id", &request_id);

    let upstream_request = state
        .gateway
        .as_ref()
        .ok_or_else(|| ApiError::internal("a proxy route without a gateway"))?
        .client
        .request(parts.method, &url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    let upstream = match tokio::time::timeout(route.timeout, upstream_request.send()).await {
        Err(_) => return Err(ApiError::UpstreamTimeout(route.prefix.clone())),
        Ok(Err(e)) if e.is_timeout() => {
            return Err(ApiError::UpstreamTimeout(route.prefix.clone()))
        }
        Ok(Err(e)) => {
            return Err(ApiError::UpstreamUnavailable(format!(
                "{}: {}",
                route.prefix,
                error_chain(&e)
            )))
        }
        Ok(Ok(response)) => response,
    };
    Ok(relay(upstream, route.timeout, limit_headers, None))
}

/// Turns an upstream answer into ours: status and headers (minus hop-by-hop) as they are,
/// the body streamed with `idle` as the longest pause between two chunks. A body that stalls
/// or breaks mid-way ends the response early; the client sees a truncated body, as it would
/// from the upstream itself.
pub(crate) fn relay(
    upstream: reqwest::Response,
    idle: Duration,
    extra_headers: HeaderMap,
    body: Option<Body>,
) -> Response {
    let status =
        StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = upstream.headers().clone();
    strip_hop_by_hop(&mut headers);
    let body =
        body.unwrap_or_else(|| Body::from_stream(idle_timeout(upstream.bytes_stream(), idle)));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response.headers_mut().extend(extra_headers);
    response
}

/// Ends a byte stream with an error when no chunk arrives for `idle`.
pub(crate) fn idle_timeout<S>(
    stream: S,
    idle: Duration,
) -> impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static
where
    S: Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
{
    let stream = stream.map_err(std::io::Error::other).boxed();
    futures::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(stream))),
            Ok(Some(Err(e))) => Some((Err(e), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the upstream stopped sending",
                )),
                None,
            )),
        }
    })
}

/// `{upstream}{path without the prefix}?{query}`.
fn upstream_url(route: &ProxyRoute, path: &str, query: Option<&str>) -> String {
    let rest = if route.strip_prefix {
        path.strip_prefix(route.prefix.as_str()).unwrap_or(path)
    } else {
        path
    };
    let mut url = String::with_capacity(route.upstream.len() + rest.len() + 1);
    url.push_str(&route.upstream);
    url.push_str(rest);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// An error and its causes on one line, for the log (never for the client).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(strip: bool) -> ProxyRoute {
        ProxyRoute {
            prefix: "/proxy/echo".into(),
            upstream: "http://up:1/base".into(),
            strip_prefix: strip,
            permissions: vec![],
            project: None,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn paths_keep_or_lose_the_prefix() {
        assert_eq!(
            upstream_url(&route(true), "/proxy/echo/a/b", Some("x=1")),
            "http://up:1/base/a/b?x=1"
        );
        assert_eq!(
            upstream_url(&route(true), "/proxy/echo", None),
            "http://up:1/base"
        );
        assert_eq!(
            upstream_url(&route(false), "/proxy/echo/a", None),
            "http://up:1/base/proxy/echo/a"
        );
    }
}
