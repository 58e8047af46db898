//! Gateway mode, AI endpoints: the OpenAI wire format in and out, streaming chunk by chunk,
//! metering equal to the provider's `usage`, budgets enforced before the provider is called,
//! fallback on every failure kind that cannot have been billed (and never once bytes were
//! streamed), and the weighted split.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use keygate_server::gateway::GatewayConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp};
use crate::upstream::{closing_server, refusing_address, Behavior, Provider};

/// Providers `alpha` and `beta` (both serve `gpt-test`; alpha also `embed-test` and
/// `instruct-test`), `dead` (refuses connections) and `closing` (drops them).
pub struct AiSetup {
    pub app: TestApp,
    pub alpha: Provider,
    pub beta: Provider,
}

/// `gpt-test` costs $2 / $8 per million input / output tokens; `embed-test` $0.10 input.
pub async fn ai_app() -> AiSetup {
    let alpha = Provider::start("alpha").await;
    let beta = Provider::start("beta").await;
    let dead = refusing_address().await;
    let closing = closing_server().await;
    let config = |ws: &str| {
        let text = format!(
            r#"
[ai]
workspaces = ["{ws}"]
default_max_tokens = 50
timeout = "2s"

[ai.prices."gpt-test"]
input = "2.00"
output = "8.00"

[ai.prices."embed-test"]
input = "0.10"
output = "0"

[ai.prices."instruct-test"]
input = "1"
output = "1"

# Upstream names the providers' model_map and the routing-rule tests map gpt-test to: a request
# is priced by the model actually called, so each needs a price (here gpt-test's).
[ai.prices."beta-gpt"]
input = "2.00"
output = "8.00"

[ai.prices."gpt-alpha"]
input = "2.00"
output = "8.00"

[ai.prices."beta-special"]
input = "2.00"
output = "8.00"

[[ai.providers]]
name = "alpha"
base_url = "{alpha}"
api_key_env = "ALPHA_API_KEY"
models = ["gpt-test", "embed-test", "instruct-test"]
timeout = "500ms"

[[ai.providers]]
name = "beta"
base_url = "{beta}"
models = ["gpt-test"]
model_map = {{ "gpt-test" = "beta-gpt" }}

[[ai.providers]]
name = "dead"
base_url = "{dead}/v1"

[[ai.providers]]
name = "closing"
base_url = "{closing}/v1"
"#,
            alpha = alpha.base_url,
            beta = beta.base_url,
        );
        let env = |name: &str| (name == "ALPHA_API_KEY").then(|| "sk-alpha-provider".to_string());
        GatewayConfig::parse(&text, &env).expect("config")
    };
    AiSetup {
        app: TestApp::spawn_gateway_for(config).await,
        alpha,
        beta,
    }
}

pub async fn chat(app: &TestApp, secret: &str, body: Value) -> Reply {
    Reply::send(
        app.client
            .post(format!("{}/v1/chat/completions", app.base))
            .bearer_auth(secret)
            .json(&body),
    )
    .await
}

/// A streamed chat completion (`hello` with `stream: true` and `extra`), its answer unread.
async fn chat_stream(app: &TestApp, secret: &str, extra: Value) -> reqwest::Response {
    let mut body = hello(extra);
    body["stream"] = json!(true);
    app.send_json("/v1/chat/completions", secret, &body).await
}

fn hello(extra: Value) -> Value {
    let mut body = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

/// `(tokens used, cost used in micros)` of a key, once settling has caught up with `expect`.
pub async fn consumption(app: &TestApp, key_id: &str, expect: (i64, i64)) -> (i64, i64) {
    let mut last = (0, 0);
    for _ in 0..100 {
        let reply = app.owner_get(&format!("/v1/keys/{key_id}/limits")).await;
        let used = |kind: &str| {
            reply.body["limits"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["kind"] == kind))
                .and_then(|l| l["used"].as_i64())
                .unwrap_or(-1)
        };
        last = (used("tokens"), used("cost"));
        if last == expect {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    last
}

async fn metered_key(app: &TestApp, name: &str) -> (String, String) {
    let created = app
        .create_key(json!({"name": name, "limits": {
            "token_limit": {"limit": 1_000_000, "reset": "monthly"},
            "cost_limit": {"limit": "100", "reset": "monthly"}
        }}))
        .await;
    (
        created["id"].as_str().expect("id").to_string(),
        created["secret"].as_str().expect("secret").to_string(),
    )
}

#[tokio::test]
async fn chat_completion_is_answered_by_the_provider_and_metered_by_its_usage() {
    let AiSetup { app, alpha, .. } = ai_app().await;
    let (key_id, secret) = metered_key(&app, "chat").await;
    let reply = chat(&app, &secret, hello(json!({}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body["choices"][0]["message"]["content"],
        "hello from alpha"
    );
    assert_eq!(reply.headers["keygate-provider"], "alpha");
    assert!(reply.headers["request-id"]
        .to_str()
        .expect("id")
        .starts_with("req_"));
    // The provider's credential replaces the customer's key.
    let auth = alpha
        .authorizations
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .flatten();
    assert_eq!(auth.as_deref(), Some("Bearer sk-alpha-provider"));
    assert_eq!(alpha.last_body()["model"], "gpt-test");
    // 11 prompt + 7 completion tokens at $2 / $8 per million: 22 + 56 micro-dollars.
    assert_eq!(consumption(&app, &key_id, (18, 78)).await, (18, 78));

    // The customer may authenticate with x-api-key too.

    let reply = Reply::send(
        app.client
            .post(format!("{}/v1/completions", app.base))
            .header("x-api-key", &secret)
            .json(&json!({"model": "instruct-test", "prompt": "hi", "max_tokens": 3})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["choices"][0]["text"], "hello from alpha");
    // 18 more tokens at $1 / $1: 18 micros.
    assert_eq!(consumption(&app, &key_id, (36, 96)).await, (36, 96));
}

/// Every AI request is one usage event: a refusal before the body is read, a refusal by a
/// budget, `GET /v1/models`, and an admitted completion — recorded by its settlement with what
/// it was charged, not also by the checks that admitted it.
#[tokio::test]
async fn each_ai_request_is_recorded_once_with_what_it_was_charged() {
    let AiSetup { app, .. } = ai_app().await;
    let created = app
        .create_key(
            json!({"name": "counted", "limits": {"token_limit": {"limit": 500, "reset": "daily"}}}),
        )
        .await;
    let key_id = created["id"].as_str().expect("id");
    let secret = created["secret"].as_str().expect("secret");

    let reply = chat(&app, secret, hello(json!({}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(consumption(&app, key_id, (18, -1)).await.0, 18);
    let reply = app.get("/v1/models", secret).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    chat(&app, secret, hello(json!({"max_tokens": 1000})))
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "token_limit_reached");
    let revoked = app.key_action(key_id, "revoke").await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    chat(&app, secret, hello(json!({})))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "revoked");

    // The settlement records in the background: wait for it, then compare.
    let mut report = Value::Null;
    for _ in 0..100 {
        app.state.usage.flush().await;
        report = app
            .owner_get(&format!("/v1/keys/{key_id}/usage?days=1"))
            .await
            .body;
        if report["totals"]["requests"] == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let totals = &report["totals"];
    assert_eq!(
        (
            &totals["requests"],
            &totals["valid"],
            &totals["denied"],
            &totals["tokens"]
        ),
        (&json!(4), &json!(2), &json!(2), &json!(18)),
        "{report}"
    );
    let operation = |name: &str| {
        report["by_operation"]
            .as_array()
            .and_then(|ops| ops.iter().find(|o| o["operation"] == name))
            .map(|o| (o["requests"].clone(), o["valid"].clone()))
    };
    assert_eq!(
        operation("/v1/chat/completions"),
        Some((json!(3), json!(1)))
    );
    assert_eq!(operation("/v1/models"), Some((json!(1), json!(1))));
}

#[tokio::test]
async fn embeddings_and_models_speak_the_openai_format() {
    let AiSetup { app, alpha, .. } = ai_app().await;
    let (key_id, secret) = metered_key(&app, "embed").await;
    alpha.set_usage(11, 0);

    let reply = Reply::send(
        app.client
            .post(format!("{}/v1/embeddings", app.base))
            .bearer_auth(&secret)
            .json(&json!({"model": "embed-test", "input": "a sentence"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body["data"][0]["embedding"],
        json!([0.25, -0.5, 0.125])
    );
    // 11 tokens at $0.10 per million is 1.1 micro-dollars, charged as 2 (rounded up).
    assert_eq!(consumption(&app, &key_id, (11, 2)).await, (11, 2));

    let reply = app.get("/v1/models", &secret).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["object"], "list");
    let ids: Vec<&str> = reply.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["gpt-test", "embed-test", "instruct-test"]);
    app.get("/v1/models", "")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing_api_key");

    let hits = alpha.hits();
    let reply = chat(&app, &secret, hello(json!({"model": "no-such-model"}))).await;
    reply.assert_error(StatusCode::NOT_FOUND, "model_not_found");
    let reply = chat(&app, "", hello(json!({}))).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "missing_api_key");
    let reply = chat(&app, "kg_live_bad", hello(json!({}))).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "malformed_api_key");
    assert_eq!(alpha.hits(), hits);
}

/// Reads an SSE response as it arrives: the events, and when the first and last arrived.
async fn read_stream(response: reqwest::Response) -> (String, Duration, Duration) {
    let started = Instant::now();
    let mut first = None;
    let mut text = String::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        first.get_or_insert_with(|| started.elapsed());
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    (text, first.unwrap_or_default(), started.elapsed())
}

#[tokio::test]
async fn streamed_answers_pass_chunk_by_chunk_and_are_metered_from_the_last_chunk() {
    let AiSetup { app, alpha, .. } = ai_app().await;
    let (key_id, secret) = metered_key(&app, "stream").await;
    *alpha.event_delay.lock().expect("lock") = Duration::from_millis(250);

    let response = chat_stream(&app, &secret, json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response
        .headers()
        .get("x-ratelimit-remaining-requests")
        .is_none());
    let (text, first, total) = read_stream(response).await;
    // Five events 250 ms apart: the first must arrive long before the last.
    assert!(
        first < Duration::from_millis(900),
        "first chunk after {first:?}"
    );
    assert!(
        total >= Duration::from_millis(1000),
        "whole stream in {total:?}"
    );
    let content: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "hello from alpha");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    // The client did not ask for the usage chunk, so it does not get it…
    assert!(!text.contains("\"prompt_tokens\""), "{text}");
    // …but the gateway asked the provider for it, and charged it.
    assert_eq!(alpha.last_body()["stream_options"]["include_usage"], true);
    assert_eq!(consumption(&app, &key_id, (18, 78)).await, (18, 78));

    *alpha.event_delay.lock().expect("lock") = Duration::ZERO;
    alpha.set_usage(100, 50);
    let include_usage = json!({"stream_options": {"include_usage": true}});
    let response = chat_stream(&app, &secret, include_usage).await;
    let (text, _, _) = read_stream(response).await;
    assert!(text.contains("\"prompt_tokens\":100"), "{text}");
    // 150 tokens, 200 + 400 micros.
    assert_eq!(consumption(&app, &key_id, (168, 678)).await, (168, 678));
}

#[tokio::test]
async fn budgets_stop_spending_before_the_provider_is_called() {
    let AiSetup { app, alpha, .. } = ai_app().await;
    alpha.set_usage(100, 100);
    let created = app
        .create_key(json!({"name": "budget", "limits": {
            "cost_limit": {"limit": "0.0005", "reset": "daily"}
        }}))
        .await;
    let secret = created["secret"].as_str().expect("secret");
    let key_id = created["id"].as_str().expect("id");
    let reply = chat(&app, secret, hello(json!({}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // 100 × $2 + 100 × $8 per million = 1000 micros: over the 500 limit, charged anyway.
    assert_eq!(consumption(&app, key_id, (-1, 1000)).await.1, 1000);
    let hits = alpha.hits();
    let reply = chat(&app, secret, hello(json!({}))).await;
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "cost_limit_reached");
    assert_eq!(
        alpha.hits(),
        hits,
        "a refused request never reaches the provider"
    );

    // The worst case is reserved up front: a request that could exceed the token limit is
    // refused before it is sent.
    let created = app
        .create_key(
            json!({"name": "tokens", "limits": {"token_limit": {"limit": 500, "reset": "daily"}}}),
        )
        .await;
    let secret = created["secret"].as_str().expect("secret");
    let reply = chat(&app, secret, hello(json!({"max_tokens": 1000}))).await;
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "token_limit_reached");
    assert_eq!(alpha.hits(), hits);
    let reply = chat(&app, secret, hello(json!({"max_tokens": 10}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

async fn rule(app: &TestApp, body: Value) -> String {
    let reply = app.owner_create("/v1/routing-rules", body).await;
    reply["id"].as_str().expect("id").to_string()
}

async fn key_with_rule(app: &TestApp, name: &str, rule_id: &str) -> String {
    let created = app
        .create_key(json!({"name": name, "routing_rule_id": rule_id}))
        .await;
    assert_eq!(created["routing_rule_id"], rule_id);
    created["secret"].as_str().expect("secret").to_string()
}

#[tokio::test]
async fn fallback_moves_on_for_each_failure_kind_before_any_byte_is_sent() {
    let AiSetup { app, alpha, beta } = ai_app().await;
    let chain = rule(
        &app,
        json!({"name": "alpha then beta", "mode": "fallback", "targets": [{"provider": "alpha"}, {"provider": "beta"}]}),
    )
    .await;
    let secret = key_with_rule(&app, "chained", &chain).await;

    for behavior in [
        Behavior::Status(500),
        Behavior::Status(503),
        Behavior::Status(429),
    ] {
        alpha.set(behavior.clone());
        let (a, b) = (alpha.hits(), beta.hits());
        let reply = chat(&app, &secret, hello(json!({}))).await;
        assert_eq!(reply.status, StatusCode::OK, "{behavior:?}: {}", reply.body);
        assert_eq!(
            reply.body["choices"][0]["message"]["content"], "hello from beta",
            "{behavior:?}"
        );
        assert_eq!(reply.headers["keygate-provider"], "beta");
        assert_eq!((alpha.hits(), beta.hits()), (a + 1, b + 1), "{behavior:?}");
        // beta's own name for the model, from its model_map.
        assert_eq!(beta.last_body()["model"], "beta-gpt");
    }
    // A client error is the client's: no fallback.
    alpha.set(Behavior::Status(400));
    let b = beta.hits();
    let reply = chat(&app, &secret, hello(json!({}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(beta.hits(), b);

    // A connection that could not be made sent nothing: the next provider is tried.
    let id = rule(
        &app,
        json!({"name": "dead then beta", "mode": "fallback", "targets": [{"provider": "dead"}, {"provider": "beta"}]}),
    )
    .await;
    let secret_via_dead = key_with_rule(&app, "via dead", &id).await;
    let reply = chat(&app, &secret_via_dead, hello(json!({}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers["keygate-provider"], "beta");

    // A timeout or a connection broken after it was made may have reached the provider, which
    // may bill it: the request is not sent (and billed) again elsewhere.
    alpha.set(Behavior::Hang);
    let b = beta.hits();
    chat(&app, &secret, hello(json!({})))
        .await
        .assert_error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
    let id = rule(
        &app,
        json!({"name": "closing then beta", "mode": "fallback", "targets": [{"provider": "closing"}, {"provider": "beta"}]}),
    )
    .await;
    let secret_via_closing = key_with_rule(&app, "via closing", &id).await;
    chat(&app, &secret_via_closing, hello(json!({})))
        .await
        .assert_error(StatusCode::BAD_GATEWAY, "upstream_unavailable");
    assert_eq!(beta.hits(), b);

    // Once the stream started, the request belongs to that provider: no second attempt.
    alpha.set(Behavior::BreakStream);
    let b = beta.hits();
    let response = chat_stream(&app, &secret, json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["keygate-provider"], "alpha");
    let mut body = response.bytes_stream();
    let mut got = String::new();
    let mut broke = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => got.push_str(&String::from_utf8_lossy(&c)),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the client sees the broken stream: {got}");
    assert!(got.contains("hello"), "{got}");
    assert_eq!(beta.hits(), b);

    // When every provider fails, the last failure is the answer.
    alpha.set(Behavior::Status(500));
    beta.set(Behavior::Status(502));
    let reply = chat(&app, &secret, hello(json!({}))).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.body["error"]["message"], "beta says 502");
    let all_dead = rule(
        &app,
        json!({"name": "nothing works", "mode": "fallback", "targets": [{"provider": "dead"}, {"provider": "closing"}]}),
    )
    .await;
    let secret = key_with_rule(&app, "doomed", &all_dead).await;
    chat(&app, &secret, hello(json!({})))
        .await
        .assert_error(StatusCode::BAD_GATEWAY, "upstream_unavailable");
    alpha.set(Behavior::Hang);
    let only_alpha = rule(
        &app,
        json!({"name": "alpha only", "mode": "fallback", "targets": [{"provider": "alpha"}]}),
    )
    .await;
    let secret = key_with_rule(&app, "hanging", &only_alpha).await;
    chat(&app, &secret, hello(json!({})))
        .await
        .assert_error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
}

#[tokio::test]
async fn a_weighted_split_holds_within_five_percent_over_two_thousand_requests() {
    let AiSetup { app, .. } = ai_app().await;
    let split = rule(
        &app,
        json!({"name": "70/30", "mode": "split", "targets": [
            {"provider": "alpha", "weight": 70},
            {"provider": "beta", "weight": 30}
        ]}),
    )
    .await;
    let secret = key_with_rule(&app, "split", &split).await;
    let counts: HashMap<String, usize> = futures::stream::iter(0..2000)
        .map(|_| {
            let (app, secret) = (&app, &secret);
            async move {
                let response = app
                    .send_json("/v1/chat/completions", secret, &hello(json!({})))
                    .await;
                assert_eq!(response.status(), StatusCode::OK);
                let provider = response.headers()["keygate-provider"]
                    .to_str()
                    .expect("provider")
                    .to_string();
                let _ = response.bytes().await;
                provider
            }
        })
        .buffer_unordered(32)
        .fold(HashMap::new(), |mut counts, provider| async move {
            *counts.entry(provider).or_insert(0) += 1;
            counts
        })
        .await;
    let alpha = counts.get("alpha").copied().unwrap_or(0) as f64 / 2000.0;
    assert!(
        (0.65..=0.75).contains(&alpha),
        "alpha share {alpha}: {counts:?}"
    );
    assert_eq!(counts.values().sum::<usize>(), 2000);
}
