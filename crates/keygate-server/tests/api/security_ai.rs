//! Regression tests for issue #15, the AI gateway's items: the reservation is a true upper
//! bound and is priced by the model actually called (8), the key is checked before the body is
//! read (9), every admitted request is charged exactly once, legacy keys included (10), and
//! nothing identifying the operator's provider account reaches a customer (low); and, from
//! the review of that fix, a request that may have reached a provider is charged and never
//! sent to a second one, and every request shape (prompt arrays, image parts, zero limits) is
//! bounded or refused. Each test failed on the code before its fix. Run all with
//! `cargo test -p keygate-server --test api security`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use keygate_server::gateway::GatewayConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::gateway_ai::{ai_app, chat, consumption, AiSetup};
use crate::helpers::{Reply, Spawn, TestApp};
use crate::upstream::{Behavior, Provider, PROVIDER_HEADERS};

struct Setup {
    app: TestApp,
    alpha: Provider,
    mapper: Provider,
}

/// `alpha` serves everything under its own names; `mapper` serves `mapped-cheap` by calling
/// it `pricey` upstream. `cheap` is free, `pricey` costs $1000 per million tokens both ways,
/// `gpt-test` $2 / $8. Bodies over 1 MiB are refused.
fn config_text(alpha: &str, mapper: &str) -> String {
    format!(
        r#"
[ai]
workspaces = "*"
default_max_tokens = 50
timeout = "5s"
max_request_bytes = 1048576

[ai.prices."gpt-test"]
input = "2.00"
output = "8.00"

[ai.prices."embed-test"]
input = "0.10"
output = "0"

[ai.prices."instruct-test"]
input = "1"
output = "1"

[ai.prices."cheap"]
input = "0"
output = "0"

[ai.prices."mapped-cheap"]
input = "0"
output = "0"

[ai.prices."pricey"]
input = "1000"
output = "1000"

[[ai.providers]]
name = "alpha"
base_url = "{alpha}"
models = ["gpt-test", "embed-test", "instruct-test", "cheap", "pricey"]

[[ai.providers]]
name = "mapper"
base_url = "{mapper}"
models = ["mapped-cheap"]
model_map = {{ "mapped-cheap" = "pricey" }}
"#
    )
}

async fn setup_with(options: Spawn) -> Setup {
    let alpha = Provider::start("alpha").await;
    let mapper = Provider::start("mapper").await;
    let text = config_text(&alpha.base_url, &mapper.base_url);
    let config = GatewayConfig::parse(&text, &|_| None).expect("config");
    Setup {
        app: TestApp::spawn_configured(options, Some(config)).await,
        alpha,
        mapper,
    }
}

async fn setup() -> Setup {
    setup_with(Spawn::default()).await
}

/// A key with lifetime budgets (so moving the clock never starts a new period), optionally
/// routed by a rule; returns `(id, secret)`.
async fn budget_key(
    app: &TestApp,
    name: &str,
    limits: Value,
    rule: Option<&str>,
) -> (String, String) {
    let mut body = json!({"name": name, "limits": limits});
    if let Some(rule) = rule {
        body["routing_rule_id"] = json!(rule);
    }
    let created = app.create_key(body).await;
    (
        created["id"].as_str().expect("id").to_owned(),
        created["secret"].as_str().expect("secret").to_owned(),
    )
}

fn roomy() -> Value {
    json!({
        "token_limit": {"limit": 1_000_000, "reset": "never"},
        "cost_limit": {"limit": "100", "reset": "never"}
    })
}

fn hello(model: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

async fn post_ai(app: &TestApp, path: &str, secret: &str, body: Value) -> Reply {
    Reply::send(
        app.client
            .post(format!("{}{path}", app.base))
            .bearer_auth(secret)
            .json(&body),
    )
    .await
}

/// What `/v1/keys/{id}/limits` says a limit of `kind` has used, polled until it equals
/// `expect` (settling happens after the answer) or `patience` runs out.
async fn used(app: &TestApp, key_id: &str, kind: &str, expect: i64, patience: Duration) -> i64 {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let reply = app.owner_get(&format!("/v1/keys/{key_id}/limits")).await;
        let now = reply.body["limits"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["kind"] == kind))
            .and_then(|l| l["used"].as_i64())
            .unwrap_or(-1);
        if now == expect || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// --- Item 8: the worst case is a bound, priced by the model actually called ------------------

#[tokio::test]
async fn security_ai_the_reserved_output_limit_is_sent_upstream() {
    let Setup { app, alpha, .. } = setup().await;
    let (_, secret) = budget_key(&app, "bounded", roomy(), None).await;

    // No limit given: default_max_tokens (50) is reserved, so the provider is told 50 — its
    // own default (up to the model's whole context) would not be covered by the hold.
    let reply = chat(&app, &secret, hello("gpt-test", json!({}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(alpha.last_body()["max_tokens"], 50, "{}", alpha.last_body());
    let reply = chat(
        &app,
        &secret,
        hello("gpt-test", json!({"max_tokens": null})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(alpha.last_body()["max_tokens"], 50, "{}", alpha.last_body());
    let reply = post_ai(
        &app,
        "/v1/completions",
        &secret,
        json!({"model": "instruct-test", "prompt": "hi"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(alpha.last_body()["max_tokens"], 50, "{}", alpha.last_body());

    // The client's own limit is what was reserved and goes as the client wrote it; a
    // `max_completion_tokens` gets no `max_tokens` beside it (reasoning models refuse that).
    let reply = chat(
        &app,
        &secret,
        hello("gpt-test", json!({"max_completion_tokens": 7})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(alpha.last_body()["max_completion_tokens"], 7);
    assert!(
        alpha.last_body().get("max_tokens").is_none(),
        "{}",
        alpha.last_body()
    );

    // Embeddings generate nothing to bound.
    let reply = post_ai(
        &app,
        "/v1/embeddings",
        &secret,
        json!({"model": "embed-test", "input": "a sentence"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        alpha.last_body().get("max_tokens").is_none(),
        "{}",
        alpha.last_body()
    );

    // A whole number written as a float (JSON does not tell 2 from 2.0) is the same bound:
    // reserved as such and forwarded as an integer, so the provider reads what was reserved.
    let reply = chat(
        &app,
        &secret,
        hello("gpt-test", json!({"max_tokens": 5.0, "n": 1e0})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        alpha.last_body()["max_tokens"],
        json!(5),
        "{}",
        alpha.last_body()
    );
    assert_eq!(alpha.last_body()["n"], json!(1), "{}", alpha.last_body());

    // A limit or count that is not a whole number cannot be reserved exactly: refused before
    // any provider sees it.
    let hits = alpha.hits();
    for bad in [
        json!({"max_tokens": -1}),
        json!({"max_tokens": "100000"}),
        json!({"max_completion_tokens": 2.5}),
        json!({"n": 0.5}),
        json!({"n": "3"}),
    ] {
        let reply = chat(&app, &secret, hello("gpt-test", bad.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.body
        );
        assert_eq!(reply.code(), "invalid_request", "{bad}: {}", reply.body);
    }
    let reply = post_ai(
        &app,
        "/v1/completions",
        &secret,
        json!({"model": "instruct-test", "prompt": "hi", "best_of": 4.5}),
    )
    .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(alpha.hits(), hits);
}

#[tokio::test]
async fn security_ai_every_completion_a_request_can_generate_is_reserved() {
    let Setup { app, alpha, .. } = setup().await;
    // 300 tokens: room for one 50-token answer with its prompt, not for five.
    let (_, secret) = budget_key(
        &app,
        "small",
        json!({"token_limit": {"limit": 300, "reset": "never"}}),
        None,
    )
    .await;
    let hits = alpha.hits();
    let reply = chat(
        &app,
        &secret,
        hello("gpt-test", json!({"max_tokens": 50, "n": 5})),
    )
    .await;
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "token_limit_reached");
    // `best_of` makes the provider generate (and bill) that many completions server-side.
    let reply = post_ai(
        &app,
        "/v1/completions",
        &secret,
        json!({"model": "instruct-test", "prompt": "hi", "max_tokens": 50, "best_of": 5}),
    )
    .await;
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "token_limit_reached");
    assert_eq!(
        alpha.hits(),
        hits,
        "a request the budget cannot hold is never sent"
    );
    let reply = post_ai(
        &app,
        "/v1/completions",
        &secret,
        json!({"model": "instruct-test", "prompt": "hi", "max_tokens": 50}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn security_ai_requests_are_priced_by_the_model_actually_called() {
    let Setup { app, alpha, mapper } = setup().await;
    // A routing rule sends the free model to the expensive one.
    let rule = app
        .owner_create(
            "/v1/routing-rules",
            json!({"name": "cheap is pricey", "mode": "fallback",
                   "targets": [{"provider": "alpha", "models": {"cheap": "pricey"}}]}),
        )
        .await;
    let rule_id = rule["id"].as_str().expect("id");
    let (key_id, secret) = budget_key(&app, "routed", roomy(), Some(rule_id)).await;
    let reply = chat(&app, &secret, hello("cheap", json!({"max_tokens": 5}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(alpha.last_body()["model"], "pricey");
    // 11 + 7 tokens at $1000 per million: 18 000 micro-dollars, not the free model's 0.
    assert_eq!(consumption(&app, &key_id, (18, 18_000)).await, (18, 18_000));

    // The same through a provider's own model_map, without any rule.
    let (key_id, secret) = budget_key(&app, "mapped", roomy(), None).await;
    let reply = chat(
        &app,
        &secret,
        hello("mapped-cheap", json!({"max_tokens": 5})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(mapper.last_body()["model"], "pricey");
    assert_eq!(consumption(&app, &key_id, (18, 18_000)).await, (18, 18_000));

    // The worst case is priced the same way: $0.01 holds a free request but not an expensive
    // one (about 100 tokens at $1000 per million is $0.10).
    let (_, secret) = budget_key(
        &app,
        "tight",
        json!({"cost_limit": {"limit": "0.01", "reset": "never"}}),
        Some(rule_id),
    )
    .await;
    let hits = alpha.hits();
    let reply = chat(&app, &secret, hello("cheap", json!({"max_tokens": 5}))).await;
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "cost_limit_reached");
    assert_eq!(alpha.hits(), hits);
}

#[tokio::test]
async fn security_ai_a_rule_mapping_to_an_unpriced_model_is_refused_when_saved() {
    let Setup { app, .. } = setup().await;
    let sneaky = json!({"name": "sneaky", "mode": "fallback",
        "targets": [{"provider": "alpha", "models": {"cheap": "gpt-unpriced-4"}}]});
    let reply = app.owner_post("/v1/routing-rules", sneaky).await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let message = reply.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("gpt-unpriced-4"), "{message}");

    let fine = app
        .owner_create(
            "/v1/routing-rules",
            json!({"name": "fine", "mode": "fallback", "targets": [{"provider": "alpha"}]}),
        )
        .await;
    let id = fine["id"].as_str().expect("id");
    let reply = app
        .owner_patch(
            &format!("/v1/routing-rules/{id}"),
            json!({"targets": [{"provider": "alpha", "models": {"cheap": "gpt-unpriced-4"}}]}),
        )
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let message = reply.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("gpt-unpriced-4"), "{message}");
}

#[test]
fn security_ai_a_provider_model_map_to_an_unpriced_model_is_a_config_error() {
    let text = r#"
[ai]
workspaces = "*"
[ai.prices."cheap"]
input = "0"
output = "0"

[[ai.providers]]
name = "a"
base_url = "http://127.0.0.1:1/v1"
models = ["cheap"]
model_map = { "cheap" = "gpt-unpriced-4" }
"#;
    let err = GatewayConfig::parse(text, &|_| None).expect_err("a map to an unpriced model");
    assert!(err.to_string().contains("gpt-unpriced-4"), "{err}");
}

// --- Item 9: the key before the body --------------------------------------------------------

/// Posts a head announcing `body_len` bytes with `Expect: 100-continue` and sends the body (not
/// JSON) only if the server asks for it with `100 Continue`, which hyper does when a handler
/// starts reading the body. Returns whether it asked, and the final status.
async fn post_expecting_continue(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> (bool, u16) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {body_len}\r\nExpect: 100-continue\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    let mut asked = false;
    let mut buffer = Vec::new();
    let work = async {
        loop {
            let end = loop {
                if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.expect("read");
                assert!(n > 0, "the server closed without answering");
                buffer.extend_from_slice(&chunk[..n]);
            };
            let status: u16 = String::from_utf8_lossy(&buffer[..end])
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("status line");
            buffer.drain(..end);
            if status != 100 {
                return status;
            }
            asked = true;
            // The server may answer before it has read it all: errors writing are fine.
            let _ = stream.write_all(&vec![b'x'; body_len]).await;
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .expect("an answer within 20 s");
    (asked, status)
}

#[tokio::test]
async fn security_ai_the_key_is_checked_before_the_body_is_read() {
    let Setup { app, alpha, .. } = setup().await;
    let (revoked_id, revoked) = app.new_key("revoked").await;
    app.key_action(&revoked_id, "revoke").await;
    let revoked = format!("Bearer {revoked}");
    let (_, secret) = budget_key(&app, "good", roomy(), None).await;
    let good = format!("Bearer {secret}");
    let big = 3 * 1024 * 1024;
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
        for headers in [
            vec![],
            vec![("Authorization", "Bearer kg_live_bad")],
            vec![("x-api-key", "not a key at all")],
            vec![("Authorization", revoked.as_str())],
        ] {
            let (asked, status) = post_expecting_continue(&app.base, path, &headers, big).await;
            assert!(
                !asked,
                "{path} {headers:?}: the body was read before the key was refused"
            );
            assert_eq!(status, 401, "{path} {headers:?}");
        }
        // With a good key the body is read, and only then judged (it is not JSON).
        let headers = [("Authorization", good.as_str())];
        assert_eq!(
            post_expecting_continue(&app.base, path, &headers, 1000).await,
            (true, 400),
            "{path}"
        );
    }
    // The reproduction from the issue: a body that is not JSON, without a key, is 401.
    let response = app
        .client
        .post(format!("{}/v1/chat/completions", app.base))
        .body(vec![b'{'; 1000])
        .send()
        .await
        .expect("send");
    Reply::from(response)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing_api_key");
    assert_eq!(alpha.hits(), 0);
}

#[tokio::test]
async fn security_ai_a_management_post_with_a_huge_body_and_no_token_is_401() {
    let app = TestApp::spawn().await;
    let big = 3 * 1024 * 1024;
    for path in [
        "/v1/keys",
        "/v1/keys/verify",
        "/v1/usage",
        "/v1/routing-rules",
        "/v1/reservations",
    ] {
        for headers in [
            vec![],
            vec![("Authorization", "Bearer not-a-token")],
            vec![("Idempotency-Key", "abc123")],
        ] {
            let (asked, status) = post_expecting_continue(&app.base, path, &headers, big).await;
            assert!(
                !asked,
                "{path} {headers:?}: the body was read before the caller was refused"
            );
            assert_eq!(status, 401, "{path} {headers:?}");
        }
    }
}

// --- Item 10: every admitted request is charged exactly once ---------------------------------

#[tokio::test]
async fn security_ai_a_client_that_hangs_up_before_the_answer_is_still_charged() {
    let Setup { app, alpha, .. } = setup().await;
    let (key_id, secret) = budget_key(&app, "impatient", roomy(), None).await;
    alpha.set(Behavior::Hang);
    let body = hello("gpt-test", json!({"max_tokens": 5}));
    let bytes = serde_json::to_vec(&body).expect("json").len() as i64;
    // The worst case: the body's bytes as input tokens and 5 output tokens, at $2 / $8.
    let worst = (bytes + 5, bytes * 2 + 40);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let sent = impatient
        .post(format!("{}/v1/chat/completions", app.base))
        .bearer_auth(&secret)
        .json(&body)
        .send()
        .await;
    assert!(
        sent.is_err(),
        "the provider hangs, so the client gives up first"
    );
    assert_eq!(
        alpha.hits(),
        1,
        "the request reached the provider, which bills it"
    );
    // Long past the hold's ttl (10 minutes): a hold left behind would have expired by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.clock.advance_millis(11 * 60 * 1000);
    assert_eq!(consumption(&app, &key_id, worst).await, worst);
    // Exactly once: nothing more arrives later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(consumption(&app, &key_id, worst).await, worst);
}

#[tokio::test]
async fn security_ai_legacy_keys_are_metered_and_charged_to_the_workspace_credits() {
    let Setup { app, alpha, .. } = setup().await;
    // 10 + 5 tokens at $2 / $8 per million: 60 micro-dollars an answer.
    alpha.set_usage(10, 5);
    app.patch_workspace(json!({"credit_balance": "0.0003"}))
        .await;
    let legacy = "sk-legacy-ai-0123456789abcdef";
    app.owner_create(
        "/v1/keys/import",
        json!({"name": "old system", "key": legacy}),
    )
    .await;
    // Credits belong to the workspace: any native key's limits show what was spent.
    let (observer, _) = app.new_key("observer").await;

    let mut admitted = 0;
    let mut refusal = None;
    for _ in 0..10 {
        let reply = chat(&app, legacy, hello("gpt-test", json!({"max_tokens": 1}))).await;
        if reply.status != StatusCode::OK {
            refusal = Some(reply);
            break;
        }
        admitted += 1;
        let spent = used(
            &app,
            &observer,
            "credits",
            admitted * 60,
            Duration::from_secs(3),
        )
        .await;
        assert_eq!(spent, admitted * 60, "after {admitted} answers");
    }
    let refusal = refusal.expect("a legacy key's spending stops when the credits run out");
    refusal.assert_error(StatusCode::PAYMENT_REQUIRED, "insufficient_credits");
    assert!(admitted >= 1);
    assert_eq!(alpha.hits() as i64, admitted);
}

/// A TCP relay to Redis that a test can cut (every connection dropped, new ones closed at
/// once) and restore.
struct Relay {
    url: String,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind relay");
        let url = format!("redis://{}", listener.local_addr().expect("addr"));
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (flag, held) = (open.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().unwrap_or_else(|p| p.into_inner()).push(task);
            }
        });
        Relay {
            url,
            open,
            connections,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
#[ignore = "needs Redis: KEYGATE_TEST_REDIS_URL (scripts/test sets it when Redis answers)"]
async fn security_ai_a_failed_redis_settle_is_retried_and_counted_in_metrics() {
    let target = crate::backends::redis_url()
        .trim_start_matches("redis://")
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let relay = Relay::start(target).await;
    let Setup { app, alpha, .. } = setup_with(Spawn::with_redis(&relay.url)).await;
    let (key_id, secret) = budget_key(&app, "unlucky", roomy(), None).await;
    *alpha.event_delay.lock().expect("lock") = Duration::from_millis(200);
    let response = app
        .send_json(
            "/v1/chat/completions",
            &secret,
            &hello("gpt-test", json!({"stream": true, "max_tokens": 5})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let first = body.next().await;
    assert!(first.is_some_and(|c| c.is_ok()), "the stream started");
    // Redis goes away while the answer streams: the settle at its end fails.
    relay.cut();
    while let Some(chunk) = body.next().await {
        chunk.expect("the answer itself is unaffected");
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    relay.restore();
    // Retried until Redis is back: the hold becomes the 18 tokens the provider reported.
    assert_eq!(
        used(&app, &key_id, "tokens", 18, Duration::from_secs(30)).await,
        18
    );
    let metrics = app.metrics_text().await;
    let retried = metrics
        .lines()
        .find_map(|l| l.strip_prefix("keygate_settle_failures_total{outcome=\"retried\"} "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(retried >= 1, "{metrics}");
    assert!(
        metrics.contains("keygate_settle_failures_total{outcome=\"given_up\"} 0"),
        "{metrics}"
    );
}

// --- Low: provider headers ---------------------------------------------------------------------

#[tokio::test]
async fn security_ai_provider_headers_never_reach_the_client() {
    let Setup { app, alpha, .. } = setup().await;
    let (_, secret) = budget_key(&app, "headers", roomy(), None).await;
    let check = |what: &str, headers: &reqwest::header::HeaderMap| {
        for name in PROVIDER_HEADERS {
            assert!(headers.get(name).is_none(), "{what}: {name} passed through");
        }
        assert!(headers.get("content-type").is_some(), "{what}");
        assert_eq!(headers["keygate-provider"], "alpha", "{what}");
    };
    let reply = chat(&app, &secret, hello("gpt-test", json!({"max_tokens": 5}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    check("answer", &reply.headers);
    let response = app
        .send_json(
            "/v1/chat/completions",
            &secret,
            &hello("gpt-test", json!({"stream": true, "max_tokens": 5})),
        )
        .await;
    check("stream", response.headers());
    let _ = response.bytes().await;
    for status in [400, 401, 429, 500] {
        alpha.set(Behavior::Status(status));
        let reply = chat(&app, &secret, hello("gpt-test", json!({"max_tokens": 5}))).await;
        assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
        assert_eq!(
            reply.body["error"]["message"],
            format!("alpha says {status}")
        );
        check(&format!("error {status}"), &reply.headers);
    }
}

// --- Review of the #15 fix: a request that may have reached a provider is charged and never
// --- sent to a second one; every shape of request is bounded ---------------------------------

#[tokio::test]
async fn security_ai_a_request_that_may_have_reached_a_provider_is_charged_and_not_retried() {
    let AiSetup { app, alpha, beta } = ai_app().await;
    let rule_for = |first: &str| {
        json!({"name": format!("{first} then beta"), "mode": "fallback",
               "targets": [{"provider": first}, {"provider": "beta"}]})
    };
    let body = hello("gpt-test", json!({"max_tokens": 5}));
    let bytes = serde_json::to_vec(&body).expect("json").len() as i64;
    // The worst case at gpt-test's $2 / $8: the body's bytes in, 5 tokens out.
    let worst = (bytes + 5, bytes * 2 + 40);

    // alpha (timeout 500 ms) hangs: it may be generating, and billing, all along. The client
    // gets 504 and pays the worst case; beta is never asked to do (and bill) it again.
    alpha.set(Behavior::Hang);
    let rule = app
        .owner_create("/v1/routing-rules", rule_for("alpha"))
        .await;
    let rule_id = rule["id"].as_str().expect("id");
    let (key_id, secret) = budget_key(&app, "slow", roomy(), Some(rule_id)).await;
    let reply = chat(&app, &secret, body.clone()).await;
    reply.assert_error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
    assert_eq!((alpha.hits(), beta.hits()), (1, 0), "no second provider");
    assert_eq!(consumption(&app, &key_id, worst).await, worst);
    // Exactly once: nothing more arrives later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(consumption(&app, &key_id, worst).await, worst);

    // A connection that breaks after it was made: the request may have been read. 502, the
    // worst case, no second provider.
    let rule = app
        .owner_create("/v1/routing-rules", rule_for("closing"))
        .await;
    let rule_id = rule["id"].as_str().expect("id");
    let (key_id, secret) = budget_key(&app, "broken", roomy(), Some(rule_id)).await;
    let reply = chat(&app, &secret, body.clone()).await;
    reply.assert_error(StatusCode::BAD_GATEWAY, "upstream_unavailable");
    assert_eq!(beta.hits(), 0, "no second provider");
    assert_eq!(consumption(&app, &key_id, worst).await, worst);

    // A connection that could not be made sent nothing: the next provider serves it, and the
    // key pays what beta reports (11 + 7 tokens), once.
    let rule = app
        .owner_create("/v1/routing-rules", rule_for("dead"))
        .await;
    let rule_id = rule["id"].as_str().expect("id");
    let (key_id, secret) = budget_key(&app, "refused", roomy(), Some(rule_id)).await;
    let reply = chat(&app, &secret, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers["keygate-provider"], "beta");
    assert_eq!(consumption(&app, &key_id, (18, 78)).await, (18, 78));
}

#[tokio::test]
async fn security_ai_every_prompt_of_a_completion_is_reserved() {
    let Setup { app, alpha, .. } = setup().await;
    // 300 tokens: room for one prompt's 50-token answer, not for five prompts'.
    let (_, secret) = budget_key(
        &app,
        "prompts",
        json!({"token_limit": {"limit": 300, "reset": "never"}}),
        None,
    )
    .await;
    let completion = |prompt: Value, extra: Value| {
        let mut body = json!({"model": "instruct-test", "prompt": prompt, "max_tokens": 50});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    let hits = alpha.hits();
    for (prompt, extra) in [
        (json!(["a", "b", "c", "d", "e"]), json!({})),
        (json!([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]), json!({})),
        // Prompts and completions per prompt multiply: 2 × 3 × 50.
        (json!(["a", "b"]), json!({"n": 3})),
        (json!(["a", "b"]), json!({"best_of": 3})),
    ] {
        let reply = post_ai(&app, "/v1/completions", &secret, completion(prompt, extra)).await;
        reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "token_limit_reached");
    }
    assert_eq!(
        alpha.hits(),
        hits,
        "a request the budget cannot hold is never sent"
    );

    // A prompt the gateway cannot count is refused before any provider sees it.
    for prompt in [
        json!({"text": "a"}),
        json!(5),
        json!(true),
        json!([{"a": 1}]),
    ] {
        let reply = post_ai(
            &app,
            "/v1/completions",
            &secret,
            completion(prompt.clone(), json!({})),
        )
        .await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert_eq!(alpha.hits(), hits);

    // One token array is one prompt, as is a one-element array or a plain string.
    for prompt in [
        json!([1, 2, 3, 4, 5]),
        json!(["a"]),
        json!([[1, 2]]),
        json!("a"),
    ] {
        let reply = post_ai(
            &app,
            "/v1/completions",
            &secret,
            completion(prompt.clone(), json!({})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{prompt}: {}", reply.body);
    }
}

#[tokio::test]
async fn security_ai_non_text_content_parts_are_reserved_or_refused() {
    let Setup { app, alpha, .. } = setup().await;
    // 6,000 tokens: room for one image's fixed 4,000-token allowance, not for two.
    let (_, secret) = budget_key(
        &app,
        "images",
        json!({"token_limit": {"limit": 6_000, "reset": "never"}}),
        None,
    )
    .await;
    let asking = |parts: Value| {
        json!({"model": "gpt-test", "max_tokens": 5,
               "messages": [{"role": "user", "content": parts}]})
    };
    let image = json!({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}});
    let text = json!({"type": "text", "text": "what is this?"});
    let hits = alpha.hits();
    let reply = chat(&app, &secret, asking(json!([text, image, image]))).await;
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "token_limit_reached");
    assert_eq!(
        alpha.hits(),
        hits,
        "a request the budget cannot hold is never sent"
    );

    // Parts whose cost cannot be bounded from the request are refused, naming the type.
    for (kind, part) in [
        (
            "input_audio",
            json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
        ),
        (
            "file",
            json!({"type": "file", "file": {"file_id": "file-abc"}}),
        ),
        (
            "video_url",
            json!({"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}),
        ),
        ("type", json!({"text": "no type"})),
        ("type", json!("a bare string")),
    ] {
        let reply = chat(&app, &secret, asking(json!([text, part]))).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        let message = reply.body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(kind), "{kind}: {message}");
    }
    assert_eq!(alpha.hits(), hits);

    // One image fits, and goes to the provider as it was sent; text and refusal parts are
    // bounded by their bytes.
    let reply = chat(&app, &secret, asking(json!([text, image]))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(alpha.last_body()["messages"][0]["content"][1], image);
    let reply = chat(
        &app,
        &secret,
        json!({"model": "gpt-test", "max_tokens": 5, "messages": [
            {"role": "user", "content": [text]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {"role": "user", "content": "please"}
        ]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn security_ai_a_zero_output_limit_or_count_is_refused() {
    let Setup { app, alpha, .. } = setup().await;
    let (_, secret) = budget_key(&app, "zeros", roomy(), None).await;
    let hits = alpha.hits();
    // A provider may read 0 as "not set" and apply its own default, which nobody reserved.
    for zero in ["max_tokens", "max_completion_tokens", "n"] {
        let reply = chat(&app, &secret, hello("gpt-test", json!({ zero: 0 }))).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        let message = reply.body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(zero), "{zero}: {message}");
    }
    for zero in ["max_tokens", "n", "best_of"] {
        let reply = post_ai(
            &app,
            "/v1/completions",
            &secret,
            json!({"model": "instruct-test", "prompt": "hi", zero: 0}),
        )
        .await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert_eq!(alpha.hits(), hits);
}
