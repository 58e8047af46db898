//! Regression tests for issue #15 (security_gateway). Run all with `cargo test -p keygate-server --test api security`.
//!
//! The gateway as an attacker meets it: keys of another workspace at a route (or the AI
//! gateway) that does not serve it, a project of another workspace, paths that try to leave
//! the upstream's base in every encoding, forged forwarding headers, and broken request bodies
//! that must be blamed on the client, not the upstream. Paths and bodies are written byte by
//! byte on a TCP socket so no client library normalises them first.

use std::time::{Duration, Instant};

use keygate_server::gateway::GatewayConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{captured_logs, Reply, TestApp};
use crate::upstream::{refusing_address, Echo, Provider};

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(config: &str) -> GatewayConfig {
    GatewayConfig::parse(config, &no_env).expect("config")
}

/// A second workspace with a key (all projects in scope) and a project of its own.
struct Tenant {
    workspace_id: String,
    secret: String,
    project: String,
}

async fn second_tenant(app: &TestApp) -> Tenant {
    let (workspace_id, token) = app.second_workspace().await;
    let key = app
        .create("/v1/keys", &token, json!({"name": "tenant b"}))
        .await;
    let project = app
        .create("/v1/projects", &token, json!({"name": "b's project"}))
        .await;
    Tenant {
        workspace_id,
        secret: key["secret"].as_str().expect("secret").to_owned(),
        project: project["id"].as_str().expect("id").to_owned(),
    }
}

async fn get(app: &TestApp, path: &str, secret: &str) -> Reply {
    Reply::send(
        app.client
            .get(format!("{}{path}", app.base))
            .bearer_auth(secret),
    )
    .await
}

/// Writes `request` on a fresh connection, then reads until the server closes it or `wait`
/// passes. Returns the status code and the whole response text.
async fn raw(app: &TestApp, request: &[u8], wait: Duration) -> (u16, String) {
    let addr = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket.write_all(request).await.expect("write");
    let mut received = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    received.extend_from_slice(&buf[..n]);
                    // One response is all we ask for: stop once its body is complete.
                    if response_complete(&received) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn response_complete(received: &[u8]) -> bool {
    let text = String::from_utf8_lossy(received);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    match length {
        Some(length) => body.len() >= length,
        None => body.ends_with("0\r\n\r\n"),
    }
}

/// A GET with the key, written as is: `target` is the request target on the wire.
fn raw_get(app: &TestApp, target: &str, secret: &str) -> Vec<u8> {
    let host = app.base.trim_start_matches("http://");
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {secret}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

fn code_of(response: &str) -> String {
    response
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str::<Value>(body).ok())
        .and_then(|body| body["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The sum of a counter's samples in `/metrics` (0 when the series is absent).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.metrics_text().await;
    text.lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn security_a_gateway_config_must_name_the_workspaces_of_every_route() {
    let route = "[[proxy]]\nprefix = \"/proxy/billing\"\nupstream = \"http://127.0.0.1:1\"\n";
    let err = GatewayConfig::parse(route, &no_env).expect_err("a route open to all by accident");
    let message = err.to_string();
    assert!(
        message.contains("/proxy/billing") && message.contains("workspaces"),
        "{message}"
    );
    let ai = "[ai]\n";
    let err = GatewayConfig::parse(ai, &no_env).expect_err("an AI gateway open to all");
    assert!(err.to_string().contains("[ai]"), "{err}");
    assert!(err.to_string().contains("workspaces"), "{err}");
    for bad in [
        "[]",
        "[\"*\", \"ws_a\"]",
        "[\"\"]",
        "\"ws_a\"",
        "[\"ws a\"]",
    ] {
        let text = format!("{route}workspaces = {bad}\n");
        assert!(
            GatewayConfig::parse(&text, &no_env).is_err(),
            "workspaces = {bad}"
        );
    }
    for good in ["\"*\"", "[\"*\"]", "[\"ws_a\", \"ws_b\"]"] {
        let text = format!("{route}workspaces = {good}\n[ai]\nworkspaces = {good}\n");
        GatewayConfig::parse(&text, &no_env).expect(good);
    }
}

#[tokio::test]
async fn security_a_proxy_route_serves_only_the_workspaces_it_names() {
    let (echo, echo_url) = Echo::start().await;
    let app = TestApp::spawn().await;
    let b = second_tenant(&app).await;
    let a = app.workspace_id.clone();
    let config = parse(&format!(
        r#"
[[proxy]]
prefix = "/only-a"
upstream = "{echo_url}/base"
workspaces = ["{a}"]

[[proxy]]
prefix = "/shared"
upstream = "{echo_url}/base"
workspaces = "*"
"#
    ));
    let app = app.restart_with_gateway(config).await;
    let (_, a_secret) = app.new_key("tenant a").await;

    let reply = get(&app, "/only-a/x", &b.secret).await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        echo.count(),
        0,
        "another workspace's key never reaches the upstream"
    );

    let reply = get(&app, "/only-a/x", &a_secret).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(echo.last().headers["keygate-workspace-id"], a.as_str());

    let reply = get(&app, "/shared/x", &b.secret).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        echo.last().headers["keygate-workspace-id"],
        b.workspace_id.as_str()
    );
}

#[tokio::test]
async fn security_a_key_never_satisfies_another_workspaces_project() {
    let (echo, echo_url) = Echo::start().await;
    let app = TestApp::spawn().await;
    let b = second_tenant(&app).await;
    let a = app.workspace_id.clone();
    let a_project = app
        .owner_post("/v1/projects", json!({"name": "a's project"}))
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let config = parse(&format!(
        r#"
[[proxy]]
prefix = "/a-project"
upstream = "{echo_url}/base"
project = "{a_project}"
workspaces = "*"

[[proxy]]
prefix = "/a-project-ab"
upstream = "{echo_url}/base"
project = "{a_project}"
workspaces = ["{a}", "{ws_b}"]
"#,
        ws_b = b.workspace_id
    ));
    let app = app.restart_with_gateway(config).await;

    // B's key has every project of B in scope; A's project is not one of them.
    for route in ["/a-project/x", "/a-project-ab/x"] {
        let reply = get(&app, route, &b.secret).await;
        reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(echo.count(), 0);

    let (_, a_secret) = app.new_key("tenant a").await;
    let reply = get(&app, "/a-project/x", &a_secret).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let seen = echo.last();
    assert_eq!(seen.headers["keygate-project"], a_project.as_str());
    assert_eq!(seen.headers["keygate-workspace-id"], a.as_str());

    // Verify mode draws the same line: an all-projects key does not cover B's project id.
    let verdict = app
        .verify(json!({"key": a_secret, "project": b.project}))
        .await;
    assert_eq!(verdict["code"], "forbidden", "{verdict}");
    let verdict = app
        .verify(json!({"key": a_secret, "project": a_project}))
        .await;
    assert_eq!(verdict["code"], "valid", "{verdict}");
}

#[tokio::test]
async fn security_the_ai_gateway_serves_only_the_workspaces_it_names() {
    let provider = Provider::start("alpha").await;
    let app = TestApp::spawn().await;
    let b = second_tenant(&app).await;
    let a = app.workspace_id.clone();
    let config = parse(&format!(
        r#"
[ai]
workspaces = ["{a}"]

[ai.prices."gpt-test"]
input = "1"
output = "1"

[[ai.providers]]
name = "alpha"
base_url = "{base}"
models = ["gpt-test"]
"#,
        base = provider.base_url
    ));
    let app = app.restart_with_gateway(config).await;

    Reply::send(
        app.client
            .post(format!("{}/v1/chat/completions", app.base))
            .bearer_auth(&b.secret)
            .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let reply = get(&app, "/v1/models", &b.secret).await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        provider.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the operator's provider credentials are never spent for another workspace"
    );

    let (_, a_secret) = app.new_key("tenant a").await;
    let reply = get(&app, "/v1/models", &a_secret).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

/// `/proxy/echo` → `{echo}/base`, and `/keep` → `{echo}/base` with the prefix kept.
async fn path_app() -> (TestApp, Echo, String) {
    let (echo, echo_url) = Echo::start().await;
    let app = TestApp::spawn_gateway_for(|ws| {
        parse(&format!(
            r#"
[[proxy]]
prefix = "/proxy/echo"
upstream = "{echo_url}/base"
workspaces = ["{ws}"]

[[proxy]]
prefix = "/keep"
upstream = "{echo_url}/base"
strip_prefix = false
workspaces = ["{ws}"]
"#
        ))
    })
    .await;
    let (_, secret) = app.new_key("paths").await;
    (app, echo, secret)
}

#[tokio::test]
async fn security_no_path_leaves_the_upstream_base_in_any_encoding() {
    let (app, echo, secret) = path_app().await;
    let host = app.base.trim_start_matches("http://").to_owned();
    let attacks = [
        "/proxy/echo/../admin/secret".to_owned(),
        "/proxy/echo/%2e%2e/admin".to_owned(),
        "/proxy/echo/%2E%2E/admin".to_owned(),
        "/proxy/echo/.%2e/admin".to_owned(),
        "/proxy/echo/%2e./admin".to_owned(),
        "/proxy/echo/a/../../admin".to_owned(),
        "/proxy/echo/./../admin".to_owned(),
        "/proxy/echo/..".to_owned(),
        "/proxy/echo/%2e%2e".to_owned(),
        "/proxy/echo/.".to_owned(),
        "/proxy/echo/..%2fadmin".to_owned(),
        "/proxy/echo/%2e%2e%2fadmin".to_owned(),
        "/proxy/echo/%2E%2E%2Fadmin".to_owned(),
        "/proxy/echo/..%5cadmin".to_owned(),
        "/proxy/echo/a%5c..%5c..%5cadmin".to_owned(),
        "/proxy/echo/..\\admin".to_owned(),
        "/proxy/echo/%252e%252e/admin".to_owned(),
        "/proxy/echo/%252e%252e%252fadmin".to_owned(),
        "/proxy/echo/%25252e%25252e/admin".to_owned(),
        "/proxy/echo/..;/admin".to_owned(),
        "/proxy/echo/..;x=1/admin".to_owned(),
        "/proxy/echo/%2e%2e;/admin".to_owned(),
        "/proxy/echo/.;/..;/admin".to_owned(),
        "/proxy/echo/..%3b/admin".to_owned(),
        "/proxy/echo/%c0%ae%c0%ae/admin".to_owned(),
        "/proxy/echo/%00/admin".to_owned(),
        "/proxy/echo/a%0d%0aX-Injected:%201".to_owned(),
        "/proxy/echo//admin".to_owned(),
        "/keep/../admin".to_owned(),
        "/keep/%2e%2e/admin".to_owned(),
        format!("http://{host}/proxy/echo/../admin"),
        format!("http://{host}/proxy/echo/%2e%2e/admin"),
        "http://elsewhere.example/proxy/echo/%2e%2e/admin".to_owned(),
    ];
    for target in &attacks {
        let (status, response) = raw(
            &app,
            &raw_get(&app, target, &secret),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(status, 400, "{target}: {response}");
        // hyper refuses a few shapes (a raw backslash) before Keygate sees them, with an
        // empty 400; whatever Keygate answers itself is `invalid_path`.
        let code = code_of(&response);
        assert!(
            code == "invalid_path" || code.is_empty(),
            "{target}: {response}"
        );
    }
    assert_eq!(
        echo.count(),
        0,
        "no escape attempt reached the upstream; it saw {:?}",
        echo.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|s| s.path.clone())
            .collect::<Vec<_>>()
    );

    // Legitimate paths still pass, byte for byte, and never leave the base.
    for (target, upstream_path) in [
        ("/proxy/echo/a/b", "/base/a/b"),
        ("/proxy/echo/a/", "/base/a/"),
        ("/proxy/echo", "/base"),
        ("/proxy/echo/v1.2/..x/x..", "/base/v1.2/..x/x.."),
        ("/proxy/echo/two%20words/%41", "/base/two%20words/%41"),
        ("/proxy/echo/a;b=1/c%3Fd", "/base/a;b=1/c%3Fd"),
        ("/keep/x", "/base/keep/x"),
        (&format!("http://{host}/proxy/echo/abs?q=1"), "/base/abs"),
    ] {
        let (status, response) = raw(
            &app,
            &raw_get(&app, target, &secret),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(status, 200, "{target}: {response}");
        assert_eq!(echo.last().path, upstream_path, "{target}");
    }
    let seen = echo.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(seen
        .iter()
        .all(|s| s.path == "/base" || s.path.starts_with("/base/")));
}

#[tokio::test]
async fn security_forwarding_headers_say_what_keygate_saw() {
    let (app, echo, secret) = path_app().await;
    let host = app.base.trim_start_matches("http://").to_owned();
    let reply = Reply::from(
        app.client
            .get(format!("{}/proxy/echo/who", app.base))
            .bearer_auth(&secret)
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "admin.internal")
            .header("forwarded", "for=6.6.6.6;proto=https;host=admin.internal")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let seen = echo.last();
    let all = |name: &str| -> Vec<String> {
        seen.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(all("x-forwarded-proto"), ["http"]);
    assert_eq!(all("x-forwarded-host"), [host.as_str()]);
    assert_eq!(
        all("forwarded"),
        [format!("for=127.0.0.1;proto=http;host=\"{host}\"")]
    );
}

/// `/smuggle` → the echo with a 500 ms timeout, and `/smuggle-down` → nothing listening.
async fn body_app() -> (TestApp, Echo, String) {
    let (echo, echo_url) = Echo::start().await;
    let down = refusing_address().await;
    let app = TestApp::spawn_gateway_for(|ws| {
        parse(&format!(
            r#"
[[proxy]]
prefix = "/smuggle"
upstream = "{echo_url}/base"
timeout = "500ms"
workspaces = ["{ws}"]

[[proxy]]
prefix = "/smuggle-down"
upstream = "{down}"
workspaces = ["{ws}"]
"#
        ))
    })
    .await;
    let (_, secret) = app.new_key("bodies").await;
    (app, echo, secret)
}

fn post(app: &TestApp, secret: &str, headers: &str, body: &str) -> Vec<u8> {
    let host = app.base.trim_start_matches("http://");
    format!(
        "POST /smuggle/x HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {secret}\r\n{headers}\r\n{body}"
    )
    .into_bytes()
}

#[tokio::test]
async fn security_a_broken_request_body_is_the_clients_error_not_the_upstreams() {
    let (app, echo, secret) = body_app().await;
    let failures = "keygate_proxy_upstream_failures_total";

    // Content-Length and Transfer-Encoding together (the request-smuggling shape). hyper
    // frames by Transfer-Encoding alone, drops Content-Length and closes the connection after
    // answering (RFC 9112 §6.1): a bad chunk is the client's 400, and bytes smuggled after the
    // chunked body are never read as a second request.
    let request = post(
        &app,
        &secret,
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "ZZZ\r\nhello\r\n0\r\n\r\n",
    );
    let (status, response) = raw(&app, &request, Duration::from_secs(10)).await;
    assert_eq!(status, 400, "{response}");
    assert_eq!(code_of(&response), "invalid_body", "{response}");
    assert_eq!(echo.count(), 0);
    let smuggled = format!(
        "GET /smuggle/smuggled HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n\r\n"
    );
    let request = post(
        &app,
        &secret,
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        &format!("5\r\nhello\r\n0\r\n\r\n{smuggled}"),
    );
    let (status, response) = raw(&app, &request, Duration::from_secs(3)).await;
    assert!(status == 200 || status == 400, "{response}");
    assert_eq!(
        response.matches("HTTP/1.1").count(),
        1,
        "one request, one answer: {response}"
    );
    let seen = echo.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(seen.iter().all(|s| s.path != "/base/smuggled"));
    assert!(
        seen.iter()
            .all(|s| !s.headers.contains_key("content-length")),
        "the upstream never sees the client's Content-Length beside a chunked body"
    );

    // A malformed chunk: the body cannot be read → 400, not 502.
    let request = post(
        &app,
        &secret,
        "Transfer-Encoding: chunked\r\nConnection: close\r\n",
        "5\r\nhello\r\nZZZ\r\nmore\r\n0\r\n\r\n",
    );
    let (status, response) = raw(&app, &request, Duration::from_secs(10)).await;
    assert_eq!(status, 400, "{response}");
    assert_eq!(code_of(&response), "invalid_body", "{response}");

    // A body shorter than its Content-Length, the connection held open: 408 once the body
    // stalls past the route's timeout, not 504 after the upstream's.
    let started = Instant::now();
    let request = post(&app, &secret, "Content-Length: 100\r\n", "only ten b");
    let (status, response) = raw(&app, &request, Duration::from_secs(10)).await;
    assert_eq!(status, 408, "{response}");
    assert_eq!(code_of(&response), "request_timeout", "{response}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // None of it is an upstream failure, in /metrics or in the error log …
    assert_eq!(metric(&app, failures).await, 0.0);
    let errors: Vec<String> = captured_logs()
        .lines()
        .filter(|line| line.contains("ERROR") && line.contains("/smuggle"))
        .map(str::to_owned)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // … while a real one still is.
    let reply = get(&app, "/smuggle-down/x", &secret).await;
    reply.assert_error(StatusCode::BAD_GATEWAY, "upstream_unavailable");
    assert_eq!(metric(&app, failures).await, 1.0);
}
