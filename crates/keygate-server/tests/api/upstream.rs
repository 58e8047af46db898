//! Upstream servers for the gateway tests, on `127.0.0.1:0`: a plain HTTP echo server, an
//! OpenAI-format provider whose behaviour a test sets (answer, fail with a status, hang, break
//! the stream), and addresses that refuse or drop connections.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, MethodRouter};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// An address where nothing listens: connecting is refused.
pub async fn refusing_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// A server that accepts connections and closes them without answering.
pub async fn closing_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    format!("http://{addr}")
}

/// What the echo server saw of one request.
#[derive(Debug, Clone)]
#[expect(
    dead_code,
    reason = "what the upstream saw, for tests that look at more of it"
)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body_len: usize,
}

/// A plain HTTP upstream. `GET /download?bytes=N` streams N bytes; `/slow` answers after 5 s;
/// anything else answers with what it received as JSON (the body summed, not echoed, when it
/// is large).
#[derive(Clone, Default)]
pub struct Echo {
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Echo {
    pub async fn start() -> (Echo, String) {
        let echo = Echo::default();
        let router = Router::new()
            .route("/base/download", get(download))
            .route("/base/slow", any(slow))
            .fallback(echo_request)
            .with_state(echo.clone());
        (echo.clone(), serve(router).await)
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Bytes `0, 1, …, 250, 0, 1, …` so a test can check every byte arrived in order.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn download(
    axum::extract::Query(q): axum::extract::Query<BTreeMap<String, usize>>,
) -> Response {
    let total = q.get("bytes").copied().unwrap_or(0);
    let chunk = 64 * 1024;
    let chunks = futures::stream::iter((0..total).step_by(chunk).map(move |start| {
        let end = (start + chunk).min(total);
        Ok::<_, std::io::Error>(Bytes::from(
            (start..end).map(|i| (i % 251) as u8).collect::<Vec<u8>>(),
        ))
    }));
    Response::new(Body::from_stream(chunks))
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

async fn echo_request(State(echo): State<Echo>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut body_len = 0usize;
    let mut in_order = true;
    let mut small = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        for (i, b) in chunk.iter().enumerate() {
            if *b != ((body_len + i) % 251) as u8 {
                in_order = false;
            }
        }
        if small.len() < 4096 {
            small.extend_from_slice(&chunk[..chunk.len().min(4096 - small.len())]);
        }
        body_len += chunk.len();
    }
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    echo.seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers.clone(),
            body_len,
        });
    let mut response = Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_len": body_len,
        "body_is_pattern": in_order,
        "body": String::from_utf8_lossy(&small),
    }))
    .into_response();
    response
        .headers_mut()
        .insert("x-upstream", "echo".parse().expect("header"));
    response
}

/// Headers a real provider sends that say who the operator is at the provider, what its
/// account's limits are, or set its cookies: the gateway must never pass them to a customer.
pub const PROVIDER_HEADERS: [&str; 7] = [
    "openai-organization",
    "openai-project",
    "openai-processing-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-tokens",
    "x-request-id",
    "set-cookie",
];

/// Adds [`PROVIDER_HEADERS`] to every answer, successful or not.
async fn identifying_headers(mut response: Response) -> Response {
    for name in PROVIDER_HEADERS {
        let value = if name == "set-cookie" {
            "__cf_bm=provider-session; Path=/; HttpOnly"
        } else {
            "org-operator-secret"
        };
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// How the OpenAI-format upstream answers its next requests.
#[derive(Debug, Clone)]
pub enum Behavior {
    Answer,
    Status(u16),
    /// Never answers (until the test ends).
    Hang,
    /// Sends one SSE event, then breaks the connection.
    BreakStream,
}

/// An OpenAI-format provider.
#[derive(Clone)]
pub struct Provider {
    pub name: String,
    pub behavior: Arc<Mutex<Behavior>>,
    pub hits: Arc<AtomicUsize>,
    pub bodies: Arc<Mutex<Vec<Value>>>,
    pub authorizations: Arc<Mutex<Vec<Option<String>>>>,
    /// `(prompt_tokens, completion_tokens)` reported in `usage`.
    pub usage: Arc<Mutex<(u64, u64)>>,
    /// Pause between SSE events.
    pub event_delay: Arc<Mutex<Duration>>,
    pub base_url: String,
}

impl Provider {
    /// Starts one; its base URL ends in `/v1`, like OpenAI's.
    pub async fn start(name: &str) -> Provider {
        let mut provider = Provider {
            name: name.to_string(),
            behavior: Arc::new(Mutex::new(Behavior::Answer)),
            hits: Arc::default(),
            bodies: Arc::default(),
            authorizations: Arc::default(),
            usage: Arc::new(Mutex::new((11, 7))),
            event_delay: Arc::new(Mutex::new(Duration::ZERO)),
            base_url: String::new(),
        };
        let router = Router::new()
            .route("/v1/chat/completions", endpoint(chat))
            .route("/v1/completions", endpoint(completion))
            .route("/v1/embeddings", endpoint(embedding))
            .layer(axum::middleware::map_response(identifying_headers))
            .with_state(provider.clone());
        provider.base_url = format!("{}/v1", serve(router).await);
        provider
    }

    pub fn set(&self, behavior: Behavior) {
        *self.behavior.lock().unwrap_or_else(|p| p.into_inner()) = behavior;
    }

    pub fn set_usage(&self, prompt: u64, completion: u64) {
        *self.usage.lock().unwrap_or_else(|p| p.into_inner()) = (prompt, completion);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn last_body(&self) -> Value {
        self.bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Counts the request and answers as told; `None` means "answer normally".
    async fn begin(&self, headers: &HeaderMap, body: &Value) -> Option<Response> {
        self.hits.fetch_add(1, Ordering::SeqCst);
        self.bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(body.clone());
        self.authorizations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(
                headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            );
        let behavior = self
            .behavior
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match behavior {
            Behavior::Answer | Behavior::BreakStream => None,
            Behavior::Status(code) => Some(
                (
                    StatusCode::from_u16(code).expect("status"),
                    Json(json!({"error": {"message": format!("{} says {code}", self.name), "type": "upstream", "code": code}})),
                )
                    .into_response(),
            ),
            Behavior::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Some(StatusCode::GATEWAY_TIMEOUT.into_response())
            }
        }
    }

    fn usage_json(&self) -> Value {
        let (prompt, completion) = *self.usage.lock().unwrap_or_else(|p| p.into_inner());
        json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
    }
}

/// An endpoint of the provider: what `begin` makes of the call first (a failure, a hang),
/// else `answer`'s answer.
fn endpoint(answer: fn(&Provider, &Value) -> Response) -> MethodRouter<Provider> {
    post(
        move |State(p): State<Provider>, headers: HeaderMap, Json(body): Json<Value>| async move {
            match p.begin(&headers, &body).await {
                Some(early) => early,
                None => answer(&p, &body),
            }
        },
    )
}

fn chat(p: &Provider, body: &Value) -> Response {
    let model = body["model"].as_str().unwrap_or("").to_string();
    if body["stream"] == true {
        return stream_chat(p, &model, body);
    }
    Json(json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": format!("hello from {}", p.name)},
            "finish_reason": "stop"
        }],
        "usage": p.usage_json(),
    }))
    .into_response()
}

fn stream_chat(p: &Provider, model: &str, body: &Value) -> Response {
    let include_usage = body["stream_options"]["include_usage"] == true;
    let words = ["hello", " from", " ", p.name.as_str()];
    let mut events: Vec<String> = words
        .iter()
        .map(|w| {
            let chunk = json!({
                "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}],
                "usage": null,
            });
            format!("data: {chunk}\n\n")
        })
        .collect();
    if include_usage {
        let chunk = json!({
            "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [], "usage": p.usage_json(),
        });
        events.push(format!("data: {chunk}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_string());
    let broken = matches!(
        *p.behavior.lock().unwrap_or_else(|p| p.into_inner()),
        Behavior::BreakStream
    );
    let delay = *p.event_delay.lock().unwrap_or_else(|p| p.into_inner());
    let stream =
        futures::stream::iter(events.into_iter().enumerate()).then(move |(i, event)| async move {
            if i > 0 && broken {
                // After a pause, so the headers and first event have surely left.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Err(std::io::Error::other("the provider broke the stream"));
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(Bytes::from(event))
        });
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert("content-type", "text/event-stream".parse().expect("ct"));
    response
        .headers_mut()
        .insert("x-ratelimit-remaining-requests", "99".parse().expect("h"));
    response
}

fn completion(p: &Provider, body: &Value) -> Response {
    Json(json!({
        "id": "cmpl-test", "object": "text_completion", "created": 1_700_000_000,
        "model": body["model"],
        "choices": [{"index": 0, "text": format!("hello from {}", p.name), "finish_reason": "stop", "logprobs": null}],
        "usage": p.usage_json(),
    }))
    .into_response()
}

fn embedding(p: &Provider, body: &Value) -> Response {
    let (prompt, _) = *p.usage.lock().unwrap_or_else(|p| p.into_inner());
    Json(json!({
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
        "model": body["model"],
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }))
    .into_response()
}
