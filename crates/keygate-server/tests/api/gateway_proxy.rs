//! Gateway mode, generic reverse proxy: what reaches the upstream (and what must not), large
//! bodies streamed both ways, every refusal answered by Keygate without calling the upstream,
//! and upstream failures as 502/504.

use keygate_server::gateway::GatewayConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp};
use crate::upstream::{closing_server, pattern, refusing_address, Echo};

fn no_env(_: &str) -> Option<String> {
    None
}

/// A gateway with `/proxy/echo` (prefix stripped), `/keep` (prefix kept), `/billing` (needs
/// `billing:read`), `/projects-only` (needs the workspace's project `gw`), `/slow` (300 ms
/// timeout), `/down` (nothing listens) and `/closing` (connections dropped). Every route serves
/// the bootstrapped workspace only.
async fn proxy_app() -> (TestApp, Echo) {
    let (echo, echo_url) = Echo::start().await;
    let down = refusing_address().await;
    let closing = closing_server().await;
    let app = TestApp::spawn().await;
    let ws = app.workspace_id.clone();
    let project = app.owner_post("/v1/projects", json!({"name": "gw"})).await;
    let project = project.body["id"].as_str().expect("project id").to_owned();
    let text = format!(
        r#"
[[proxy]]
prefix = "/proxy/echo"
upstream = "{echo_url}/base"
workspaces = ["{ws}"]

[[proxy]]
prefix = "/keep"
upstream = "{echo_url}/base"
workspaces = ["{ws}"]
strip_prefix = false

[[proxy]]
prefix = "/billing"
upstream = "{echo_url}/base"
workspaces = ["{ws}"]
permissions = ["billing:read"]

[[proxy]]
prefix = "/projects-only"
upstream = "{echo_url}/base"
workspaces = ["{ws}"]
project = "{project}"

[[proxy]]
prefix = "/slow"
upstream = "{echo_url}/base/slow"
workspaces = ["{ws}"]
timeout = "300ms"

[[proxy]]
prefix = "/down"
upstream = "{down}"
workspaces = ["{ws}"]

[[proxy]]
prefix = "/closing"
upstream = "{closing}"
workspaces = ["{ws}"]

[[proxy]]
prefix = "/v1/search"
upstream = "{echo_url}/base"
workspaces = ["{ws}"]
"#
    );
    let config = GatewayConfig::parse(&text, &no_env).expect("config");
    (app.restart_with_gateway(config).await, echo)
}

#[tokio::test]
async fn proxy_forwards_method_path_query_headers_and_body_and_strips_the_key() {
    let (app, echo) = proxy_app().await;
    let (key_id, secret) = app.new_key("proxied").await;

    let reply = Reply::send(
        app.client
            .get(format!("{}/proxy/echo/a/b?x=1&y=two%20words", app.base))
            .bearer_auth(&secret)
            .header("x-custom", "kept")
            .header("keygate-key-id", "key_forged")
            .header("keygate-workspace-id", "ws_forged"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["method"], "GET");
    assert_eq!(reply.body["path"], "/base/a/b");
    assert_eq!(reply.body["query"], "x=1&y=two%20words");
    assert_eq!(reply.headers["x-upstream"], "echo");
    let seen = echo.last();
    let header = |name: &str| {
        seen.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header("x-custom").as_deref(), Some("kept"));
    assert_eq!(
        header("authorization"),
        None,
        "the key must not reach the upstream"
    );
    assert_eq!(header("x-api-key"), None);
    assert_eq!(header("keygate-key-id").as_deref(), Some(key_id.as_str()));
    assert_eq!(
        header("keygate-workspace-id").as_deref(),
        Some(app.workspace_id.as_str())
    );
    assert_eq!(header("keygate-environment").as_deref(), Some("live"));
    assert_eq!(header("keygate-project"), None);
    let request_id = reply.headers["request-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert!(request_id.starts_with("req_"));
    assert_eq!(header("request-id").as_deref(), Some(request_id.as_str()));
    assert!(seen
        .headers
        .values()
        .all(|v| !v.to_str().unwrap_or("").contains(&secret)));

    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let reply = Reply::send(
            app.client
                .request(method.clone(), format!("{}/proxy/echo/items/7", app.base))
                .header("x-api-key", &secret)
                .header("content-type", "text/plain")
                .body("a body of 20 bytes!!"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.body);
        assert_eq!(reply.body["method"], method.as_str());
        assert_eq!(reply.body["body"], "a body of 20 bytes!!");
        assert_eq!(reply.body["headers"]["content-type"], "text/plain");
        assert!(reply.body["headers"].get("x-api-key").is_none());
        assert!(echo.last().headers.get("x-api-key").is_none());
    }

    // The exact prefix, and a route that keeps its prefix.
    let reply = Reply::send(
        app.client
            .get(format!("{}/proxy/echo", app.base))
            .bearer_auth(&secret),
    )
    .await;
    assert_eq!(reply.body["path"], "/base");
    let reply = Reply::send(
        app.client
            .get(format!("{}/keep/x", app.base))
            .bearer_auth(&secret),
    )
    .await;
    assert_eq!(reply.body["path"], "/base/keep/x");
    // A prefix under /v1 that is not ours, beside the management API that still works.
    let reply = Reply::send(
        app.client
            .get(format!("{}/v1/search/q", app.base))
            .bearer_auth(&secret),
    )
    .await;
    assert_eq!(reply.body["path"], "/base/q");
    let keys = app.owner_get("/v1/keys").await;
    assert_eq!(keys.status, StatusCode::OK);
}

#[tokio::test]
async fn twenty_megabyte_bodies_stream_both_ways() {
    let (app, _echo) = proxy_app().await;
    let (_, secret) = app.new_key("big").await;
    const SIZE: usize = 20 * 1024 * 1024;

    // Upload as a chunked stream: no content-length, so nothing can size a buffer up front.
    let data = pattern(SIZE);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(256 * 1024).map(|c| Ok(c.to_vec())).collect();
    let reply = Reply::send(
        app.client
            .put(format!("{}/proxy/echo/upload", app.base))
            .bearer_auth(&secret)
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["body_len"], SIZE);
    assert_eq!(reply.body["body_is_pattern"], true);

    let response = app
        .client
        .get(format!("{}/proxy/echo/download?bytes={SIZE}", app.base))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.expect("body");
    assert_eq!(body.len(), SIZE);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[tokio::test]
async fn every_refusal_is_answered_without_calling_the_upstream() {
    let (app, echo) = proxy_app().await;
    let url = |path: &str| format!("{}{path}", app.base);

    let reply = Reply::send(app.client.get(url("/proxy/echo/x"))).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "missing_api_key");
    let reply = Reply::send(
        app.client
            .get(url("/proxy/echo/x"))
            .bearer_auth("kg_live_nope"),
    )
    .await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "malformed_api_key");

    let (deleted_id, deleted) = app.new_key("deleted").await;
    app.owner_delete(&format!("/v1/keys/{deleted_id}")).await;
    let reply = Reply::send(app.client.get(url("/proxy/echo/x")).bearer_auth(&deleted)).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");

    let (revoked_id, revoked) = app.new_key("revoked").await;
    app.key_action(&revoked_id, "revoke").await;
    let reply = Reply::send(
        app.client
            .get(url("/proxy/echo/x"))
            .header("x-api-key", &revoked),
    )
    .await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "revoked");

    let (disabled_id, disabled) = app.new_key("disabled").await;
    app.key_action(&disabled_id, "disable").await;
    let reply = Reply::send(app.client.get(url("/proxy/echo/x")).bearer_auth(&disabled)).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "disabled");

    let expiring = app
        .create_key(json!({"name": "expiring", "expires_in": "1d"}))
        .await;
    let expiring = expiring["secret"].as_str().expect("secret").to_string();

    let (_, plain) = app.new_key("no permissions").await;
    let reply = Reply::send(app.client.get(url("/billing/x")).bearer_auth(&plain)).await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let billing = app
        .create_key(json!({"name": "billing", "permissions": ["billing:read"]}))
        .await;
    let billing = billing["secret"].as_str().expect("secret").to_string();
    let before = echo.count();
    let reply = Reply::send(app.client.get(url("/billing/x")).bearer_auth(&billing)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(echo.count(), before + 1);

    let project = app
        .owner_post("/v1/projects", json!({"name": "elsewhere"}))
        .await;
    let scoped = app
        .create_key(json!({"name": "scoped", "scope": [project.body["id"]]}))
        .await;
    let scoped = scoped["secret"].as_str().expect("secret").to_string();
    let reply = Reply::send(app.client.get(url("/projects-only/x")).bearer_auth(&scoped)).await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let reply = Reply::send(app.client.get(url("/projects-only/x")).bearer_auth(&plain)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let projects = app.owner_get("/v1/projects").await;
    let gw = projects.body["items"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == "gw"))
        .map(|p| p["id"].clone())
        .expect("project gw");
    assert_eq!(
        echo.last().headers["keygate-project"],
        gw.as_str().expect("id")
    );

    app.clock.advance_millis(2 * 86_400_000);
    let reply = Reply::send(app.client.get(url("/proxy/echo/x")).bearer_auth(&expiring)).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "expired");

    let calls_before_refusals = echo.count();
    let _ = Reply::send(app.client.get(url("/proxy/echo/x")).bearer_auth(&revoked)).await;
    assert_eq!(
        echo.count(),
        calls_before_refusals,
        "refused requests never reach the upstream"
    );
}

#[tokio::test]
async fn rate_limits_and_budgets_refuse_with_their_codes_and_headers() {
    let (app, echo) = proxy_app().await;
    let limited = app
        .create_key(
            json!({"name": "limited", "limits": {"rate_limits": [{"limit": 2, "window": "1m"}]}}),
        )
        .await;
    let secret = limited["secret"].as_str().expect("secret").to_string();
    let url = format!("{}/proxy/echo/x", app.base);
    for remaining in [1, 0] {
        let reply = Reply::send(app.client.get(&url).bearer_auth(&secret)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers["ratelimit-limit"], "2");
        assert_eq!(
            reply.headers["ratelimit-remaining"],
            remaining.to_string().as_str()
        );
        assert!(reply.headers.contains_key("ratelimit-reset"));
    }
    let calls = echo.count();
    let reply = Reply::send(app.client.get(&url).bearer_auth(&secret)).await;
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .expect("retry-after")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(reply.headers["ratelimit-remaining"], "0");
    assert_eq!(echo.count(), calls);

    // Daily spend cap used up by reported usage → 402.
    let capped = app
        .create_key(json!({"name": "capped", "limits": {"daily_spend_cap": "1.00"}}))
        .await;
    let report = app
        .owner_post("/v1/usage", json!({"key_id": capped["id"], "cost": "1.00"}))
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let reply = Reply::send(
        app.client
            .get(&url)
            .bearer_auth(capped["secret"].as_str().expect("secret")),
    )
    .await;
    reply.assert_error(StatusCode::PAYMENT_REQUIRED, "spend_cap_reached");

    // The workspace's credit used up → 402 for every key.
    let (other_id, other) = app.new_key("credits").await;
    app.patch_workspace(json!({"credit_balance": "0.50"})).await;
    app.owner_post("/v1/usage", json!({"key_id": other_id, "cost": "0.75"}))
        .await;
    let reply = Reply::send(app.client.get(&url).bearer_auth(&other)).await;
    reply.assert_error(StatusCode::PAYMENT_REQUIRED, "insufficient_credits");
    assert_eq!(echo.count(), calls);
}

/// The gateway checks a key's identity like verify mode does: the keys of one customer share
/// its limits, a refusal reaches no upstream, and usage reported on one key counts for all.
#[tokio::test]
async fn identity_limits_are_shared_by_its_keys_through_the_proxy() {
    let (app, echo) = proxy_app().await;
    let identity = app
        .owner_post(
            "/v1/identities",
            json!({"external_id": "cus_gw", "limits": {
                "rate_limits": [{"limit": 3, "window": "1m"}],
                "daily_spend_cap": "1.00"}}),
        )
        .await;
    assert_eq!(identity.status, StatusCode::CREATED, "{}", identity.body);
    let identity = identity.body["id"].as_str().expect("id").to_owned();
    let mut secrets = Vec::new();
    let mut ids = Vec::new();
    for name in ["gw a", "gw b"] {
        let key = app
            .create_key(json!({"name": name, "identity_id": identity}))
            .await;
        secrets.push(key["secret"].as_str().expect("secret").to_owned());
        ids.push(key["id"].as_str().expect("id").to_owned());
    }
    let url = format!("{}/proxy/echo/x", app.base);
    for secret in [&secrets[0], &secrets[1], &secrets[0]] {
        let reply = Reply::send(app.client.get(&url).bearer_auth(secret)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let calls = echo.count();
    let reply = Reply::send(app.client.get(&url).bearer_auth(&secrets[1])).await;
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(echo.count(), calls, "a refused request reaches no upstream");

    // Spend reported on key a uses up the identity's daily cap: key b is refused too, once
    // the rate window has room again.
    app.clock.advance_millis(61_000);
    let report = app
        .owner_post("/v1/usage", json!({"key_id": ids[0], "cost": "1.00"}))
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let reply = Reply::send(app.client.get(&url).bearer_auth(&secrets[1])).await;
    reply.assert_error(StatusCode::PAYMENT_REQUIRED, "spend_cap_reached");
    assert_eq!(echo.count(), calls);
}

#[tokio::test]
async fn upstream_failures_are_502_and_504() {
    let (app, _echo) = proxy_app().await;
    let (_, secret) = app.new_key("failing").await;
    let reply = Reply::send(
        app.client
            .get(format!("{}/down/x", app.base))
            .bearer_auth(&secret),
    )
    .await;
    reply.assert_error(StatusCode::BAD_GATEWAY, "upstream_unavailable");
    let reply = Reply::send(
        app.client
            .get(format!("{}/closing/x", app.base))
            .bearer_auth(&secret),
    )
    .await;
    reply.assert_error(StatusCode::BAD_GATEWAY, "upstream_unavailable");
    let started = std::time::Instant::now();
    let reply = Reply::send(
        app.client
            .get(format!("{}/slow", app.base))
            .bearer_auth(&secret),
    )
    .await;
    reply.assert_error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let message = reply.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        !message.contains("127.0.0.1"),
        "5xx bodies say nothing internal: {message}"
    );
    let _: Value = reply.body;
}
