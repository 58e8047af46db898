//! The generic reverse proxy: authenticate the customer's key through the pipeline, answer
//! every refusal here, and forward what is allowed to the route's upstream — method, path,
//! query, headers and body — streaming the body both ways.
//!
//! What the upstream sees differs from what the client sent in exactly these ways: the key
//! (`Authorization`, `x-api-key`) is removed, as are hop-by-hop headers, any `keygate-*` header
//! and any forwarding header (`X-Forwarded-*`, `Forwarded`, `X-Real-IP`) the client sent, so a
//! client can forge neither its identity nor its address; `keygate-key-id`,
//! `keygate-workspace-id`, `keygate-environment`, `keygate-project` (when the route names one),
//! `request-id` and the forwarding headers describing what Keygate saw are added; and with
//! `strip_prefix` (the default) the route prefix is cut from the path.
//!
//! The design decision a reader must know: the upstream path is *built*, never resolved. Each
//! segment of the client's path is percent-decoded and refused if it could mean a different
//! place to any parser on the way (a dot segment however encoded, `%2f`, `%5c`, a backslash, a
//! `%` left after decoding, a control character, an empty segment); the checked segments are
//! appended to the base as the client wrote them, and the final URL is checked to still be
//! under the base. So no encoding can reach an upstream path outside the route's base.
//!
//! A request whose own body is broken (malformed chunks, both `Content-Length` and
//! `Transfer-Encoding`, a body that stops arriving) is the client's error — 400 or 408, logged
//! at debug level — and never counted or logged as an upstream failure: the body is watched on
//! its way upstream so a failed upstream call can be told apart from a failed client.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt, TryStreamExt};
use keygate_core::verify::Requirement;

use super::config::ProxyRoute;
use super::headers::{presented_key, strip_hop_by_hop};
use crate::error::ApiError;
use crate::extract::peer_ip;
use crate::pipeline::{self, Admitted, Attempt, Door};
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::usage::UsageContext;

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
    // What is wrong with the request itself is refused first: no key lookup, nothing counted.
    let url = upstream_url(route, &parts.uri)?;
    // hyper already frames such a request by Transfer-Encoding alone, drops Content-Length and
    // closes the connection after answering (RFC 9112 §6.1); this guard keeps the two from
    // ever reaching the upstream together should the server stack below change.
    if parts.headers.contains_key(header::TRANSFER_ENCODING)
        && parts.headers.contains_key(header::CONTENT_LENGTH)
    {
        tracing::debug!(route = %route.prefix, "refused a request with both Content-Length and Transfer-Encoding");
        return Err(ApiError::InvalidBody(
            "The request has both Content-Length and Transfer-Encoding; send one of them.".into(),
        ));
    }
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let key = presented_key(&parts.headers);
    let requirement = Requirement {
        project: route.project.as_deref(),
        permissions: &route.permissions,
    };
    let attempt = Attempt::request(key, requirement, &parts.headers);
    let usage = UsageContext::new(
        request_id.clone(),
        route.prefix.clone(),
        route.project.clone(),
        peer_ip(&parts.extensions),
        key,
    );
    let checked = pipeline::check(state, Door::Route(&route.workspaces), &attempt, &usage).await?;
    let Admitted {
        key: found,
        headers: limit_headers,
        ..
    } = match checked.admitted() {
        Ok(admitted) => admitted,
        Err(refusal) => return Ok(refusal),
    };

    let seen = Seen::of(&parts);
    let mut headers = std::mem::take(&mut parts.headers);
    strip_hop_by_hop(&mut headers);
    headers.remove(header::AUTHORIZATION);
    headers.remove("x-api-key");
    let forged: Vec<_> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.starts_with("keygate-")
                || name.starts_with("x-forwarded-")
                || name == "forwarded"
                || name == "x-real-ip"
        })
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
    seen.write(&mut headers);

    let watch = Arc::new(BodyWatch::default());
    let mut upstream_request = state
        .gateway
        .as_ref()
        .ok_or_else(|| ApiError::internal("a proxy route without a gateway"))?
        .client
        .request(parts.method, url)
        .headers(headers);
    if axum::body::HttpBody::size_hint(&body).exact() != Some(0) {
        upstream_request =
            upstream_request.body(reqwest::Body::wrap_stream(watched(body, watch.clone())));
    }
    let metrics = &state.metrics;
    let upstream = match tokio::time::timeout(route.timeout, upstream_request.send()).await {
        Err(_) if watch.awaiting_client() => return Err(client_fault(route, &watch, true)),
        Err(_) => {
            metrics.upstream_timeouts.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::UpstreamTimeout(route.prefix.clone()));
        }
        Ok(Err(_)) if watch.failed() => return Err(client_fault(route, &watch, false)),
        Ok(Err(e)) if e.is_timeout() => {
            metrics.upstream_timeouts.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::UpstreamTimeout(route.prefix.clone()));
        }
        Ok(Err(e)) => {
            metrics.upstream_unavailable.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::UpstreamUnavailable(format!(
                "{}: {}",
                route.prefix,
                error_chain(&e)
            )));
        }
        Ok(Ok(response)) => response,
    };
    Ok(relay(upstream, route.timeout, limit_headers, None))
}

/// The answer to a request whose own body failed on its way upstream: 408 when it stopped
/// arriving, 400 when it could not be read. Logged at debug level: any client can cause it.
fn client_fault(route: &ProxyRoute, watch: &BodyWatch, stalled: bool) -> ApiError {
    match watch.failure() {
        Some(why) if !stalled => {
            tracing::debug!(route = %route.prefix, error = %why, "the client's request body could not be read");
            ApiError::InvalidBody(
                "The request body could not be read: it is malformed or was cut off.".into(),
            )
        }
        _ => {
            tracing::debug!(route = %route.prefix, "the client's request body stopped arriving");
            ApiError::BodyTimeout
        }
    }
}

/// What the proxy knows about the client's request body on its way upstream.
#[derive(Debug, Default)]
struct BodyWatch {
    /// Why reading the client's body failed (malformed chunk, connection cut).
    failure: OnceLock<String>,
    /// Whether the upstream is, right now, waiting for the client's next chunk.
    awaiting_client: AtomicBool,
}

impl BodyWatch {
    fn failed(&self) -> bool {
        self.failure.get().is_some()
    }

    fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    fn awaiting_client(&self) -> bool {
        self.awaiting_client.load(Ordering::Relaxed)
    }
}

/// The client's body as a stream for the upstream request, reporting to `watch` whether it is
/// waiting on the client and whether reading it failed.
fn watched(
    body: Body,
    watch: Arc<BodyWatch>,
) -> impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let mut inner = body.into_data_stream();
    futures::stream::poll_fn(move |cx| {
        let polled = inner.poll_next_unpin(cx);
        watch
            .awaiting_client
            .store(polled.is_pending(), Ordering::Relaxed);
        match polled {
            Poll::Ready(Some(Err(e))) => {
                let _ = watch.failure.set(error_chain(&e));
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
            other => other.map(|item| item.map(|chunk| chunk.map_err(std::io::Error::other))),
        }
    })
}

/// The client as Keygate saw it, for the forwarding headers: the peer's address, the scheme
/// it spoke (Keygate serves plain HTTP; TLS is terminated in front of it) and the host it asked
/// for (an absolute-form target's authority, else the `Host` header).
struct Seen {
    client: Option<String>,
    host: Option<String>,
}

impl Seen {
    fn of(parts: &axum::http::request::Parts) -> Self {
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            // Only what can be a host (and so needs no escaping inside `Forwarded`).
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
            });
        Seen {
            client: peer_ip(&parts.extensions),
            host,
        }
    }

    /// Sets `X-Forwarded-For`, `-Proto`, `-Host`, `X-Real-IP` and `Forwarded` (RFC 7239).
    fn write(&self, headers: &mut HeaderMap) {
        let mut forwarded = Vec::new();
        if let Some(client) = &self.client {
            insert(headers, "x-forwarded-for", client);
            insert(headers, "x-real-ip", client);
            forwarded.push(if client.contains(':') {
                format!("for=\"[{client}]\"")
            } else {
                format!("for={client}")
            });
        }
        insert(headers, "x-forwarded-proto", "http");
        forwarded.push("proto=http".to_owned());
        if let Some(host) = &self.host {
            insert(headers, "x-forwarded-host", host);
            forwarded.push(format!("host=\"{host}\""));
        }
        insert(headers, "forwarded", &forwarded.join(";"));
    }
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

/// `{upstream}{path without the prefix}?{query}`, or `InvalidPath` when the path could leave
/// the upstream's base under any reading (see the module docs).
fn upstream_url(route: &ProxyRoute, uri: &Uri) -> Result<reqwest::Url, ApiError> {
    let path = uri.path();
    let rest = if route.strip_prefix {
        path.strip_prefix(route.prefix.as_str())
            .ok_or(ApiError::InvalidPath)?
    } else {
        path
    };
    if let Some(segments) = rest.strip_prefix('/') {
        let count = segments.split('/').count();
        for (i, segment) in segments.split('/').enumerate() {
            if !plain_segment(segment, i + 1 == count) {
                return Err(ApiError::InvalidPath);
            }
        }
    } else if !rest.is_empty() {
        return Err(ApiError::InvalidPath);
    }
    let mut url = String::with_capacity(route.upstream.len() + rest.len() + 1);
    url.push_str(&route.upstream);
    url.push_str(rest);
    if let Some(query) = uri.query() {
        url.push('?');
        url.push_str(query);
    }
    let url = reqwest::Url::parse(&url).map_err(|_| ApiError::InvalidPath)?;
    // Belt and braces: whatever the URL parser did, the result must still be under the base.
    let base = reqwest::Url::parse(&route.upstream)
        .map_err(|e| ApiError::internal(format!("upstream {}: {e}", route.upstream)))?;
    let base_path = base.path().trim_end_matches('/');
    let under_base = url.path() == base_path
        || url
            .path()
            .strip_prefix(base_path)
            .is_some_and(|tail| tail.starts_with('/'));
    if url.origin() != base.origin() || !under_base {
        return Err(ApiError::InvalidPath);
    }
    Ok(url)
}

/// Whether one raw path segment means the same to every parser on the way: after
/// percent-decoding it is UTF-8 with no `/`, `\`, `%` (double encoding) or control character,
/// and what precedes any `;` parameters is not made of dots alone (`.`, `..`, `..;x`) nor empty
/// (an empty segment is allowed only last: a trailing slash).
fn plain_segment(raw: &str, last: bool) -> bool {
    if raw.is_empty() {
        return last;
    }
    let Some(decoded) = percent_decode(raw) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    if decoded
        .chars()
        .any(|c| c == '/' || c == '\\' || c == '%' || c.is_control())
    {
        return false;
    }
    let name = decoded.split(';').next().unwrap_or_default().trim();
    !name.is_empty() && !name.bytes().all(|b| b == b'.')
}

/// Decodes `%XX` escapes once; `None` for a `%` not followed by two hex digits.
fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
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
    use crate::gateway::config::Workspaces;

    fn route(strip: bool) -> ProxyRoute {
        ProxyRoute {
            prefix: "/proxy/echo".into(),
            upstream: "http://up:1/base".into(),
            strip_prefix: strip,
            permissions: vec![],
            project: None,
            timeout: Duration::from_secs(1),
            workspaces: Workspaces::Any,
        }
    }

    fn url(route: &ProxyRoute, target: &str) -> Result<String, ApiError> {
        let uri: Uri = target.parse().map_err(|_| ApiError::InvalidPath)?;
        upstream_url(route, &uri).map(String::from)
    }

    #[test]
    fn paths_keep_or_lose_the_prefix() {
        let ok = |route: &ProxyRoute, target: &str| url(route, target).expect(target);
        assert_eq!(
            ok(&route(true), "/proxy/echo/a/b?x=1"),
            "http://up:1/base/a/b?x=1"
        );
        assert_eq!(ok(&route(true), "/proxy/echo"), "http://up:1/base");
        assert_eq!(
            ok(&route(false), "/proxy/echo/a"),
            "http://up:1/base/proxy/echo/a"
        );
        assert_eq!(
            ok(&route(true), "/proxy/echo/%41%20b;v=1/x..y/"),
            "http://up:1/base/%41%20b;v=1/x..y/"
        );
    }

    #[test]
    fn no_segment_can_climb_out_of_the_base() {
        for target in [
            "/proxy/echo/..",
            "/proxy/echo/.",
            "/proxy/echo/a/../..",
            "/proxy/echo/%2e%2E/x",
            "/proxy/echo/.%2e",
            "/proxy/echo/...",
            "/proxy/echo/..%2fx",
            "/proxy/echo/a%5c..",
            "/proxy/echo/%252e%252e",
            "/proxy/echo/..;x",
            "/proxy/echo/%2e%2e%3b",
            "/proxy/echo/;x/a",
            "/proxy/echo/%c0%ae%c0%ae",
            "/proxy/echo/%00",
            "/proxy/echo/%zz",
            "/proxy/echo/%4",
            "/proxy/echo//a",
            "/proxy/echoes",
            "http://other/proxy/echo/%2e%2e",
        ] {
            assert!(
                matches!(url(&route(true), target), Err(ApiError::InvalidPath)),
                "{target}"
            );
        }
        assert!(matches!(
            url(&route(false), "/proxy/echo/../../x"),
            Err(ApiError::InvalidPath)
        ));
    }
}
