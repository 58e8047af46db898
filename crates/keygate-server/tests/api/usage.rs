//! Usage: totals equal the requests made (per key, operation, project and day), a request id
//! leads back to its key, another workspace sees none of it, and a graceful shutdown writes
//! every buffered event.

use std::sync::Arc;
use std::time::Duration;

use keygate_core::SystemClock;
use keygate_server::{prepare, serve, ServerSettings};
use keygate_store::{connect, UsageQuery};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp};

both_backends!(
    usage_totals_equal_the_requests_made,
    a_request_id_leads_back_to_its_key,
);

/// Verifies with the owner's token and returns the reply's `request-id`.
async fn verify(app: &TestApp, body: Value) -> String {
    let reply = app.owner_post("/v1/keys/verify", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply
        .headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request-id header")
        .to_owned()
}

fn group<'a>(list: &'a Value, field: &str, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|g| g[field] == name))
        .unwrap_or_else(|| panic!("no {field} {name} in {list}"))
}

async fn usage_totals_equal_the_requests_made(app: &TestApp) {
    let project = app
        .owner_create("/v1/projects", json!({"name": "billing"}))
        .await;
    let project_id = project["id"].as_str().expect("project id").to_owned();
    let (a, a_secret) = app.new_key("usage a").await;
    let (b, b_secret) = app.new_key("usage b").await;

    for _ in 0..5 {
        verify(
            app,
            json!({"key": a_secret, "operation": "POST /v1/chat", "tokens": 10, "cost": "0.01"}),
        )
        .await;
    }
    for _ in 0..3 {
        verify(
            app,
            json!({"key": a_secret, "operation": "POST /v1/embed", "project": project_id}),
        )
        .await;
    }
    // Refused: the key lacks the permission. Counted as requests, nothing consumed.
    for _ in 0..2 {
        let id = verify(
            app,
            json!({"key": a_secret, "operation": "POST /v1/chat", "permissions": ["admin"],
                   "tokens": 99, "cost": "9"}),
        )
        .await;
        assert!(id.starts_with("req_"));
    }
    for _ in 0..4 {
        verify(app, json!({"key": b_secret})).await;
    }
    // No key identified: not anyone's usage (they are failed attempts, see audit.rs).
    verify(app, json!({"key": "kg_live_not-a-key"})).await;
    app.state.usage.flush().await;

    let report = app.owner_get(&format!("/v1/keys/{a}/usage?days=7")).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let r = &report.body;
    assert_eq!(r["key_id"], a.as_str());
    assert_eq!(
        r["totals"],
        json!({"requests": 10, "valid": 8, "denied": 2, "tokens": 50, "cost": "0.05"})
    );
    let days = r["days"].as_array().expect("days");
    assert_eq!(days.len(), 7, "every day of the range, zeros included");
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(days[6]["date"], today.as_str());
    assert_eq!(days[6]["requests"], 10);
    assert!(days[..6]
        .iter()
        .all(|d| d["requests"] == 0 && d["cost"] == "0.00"));
    let chat = group(&r["by_operation"], "operation", "POST /v1/chat");
    assert_eq!(
        (
            &chat["requests"],
            &chat["valid"],
            &chat["denied"],
            &chat["tokens"]
        ),
        (&json!(7), &json!(5), &json!(2), &json!(50))
    );
    assert_eq!(
        group(&r["by_operation"], "operation", "POST /v1/embed")["requests"],
        3
    );
    assert_eq!(
        group(&r["by_project"], "project", &project_id)["requests"],
        3
    );
    let no_project = r["by_project"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["project"].is_null()))
        .expect("requests without a project");
    assert_eq!(no_project["requests"], 7);
    assert_eq!(
        group(&r["by_outcome"], "outcome", "forbidden")["requests"],
        2
    );
    assert_eq!(group(&r["by_outcome"], "outcome", "valid")["requests"], 8);
    assert_eq!(r["daily_average"]["requests"], json!(1.43));

    let by_key = app.owner_get("/v1/usage?group_by=key&days=1").await;
    assert_eq!(by_key.status, StatusCode::OK, "{}", by_key.body);
    assert_eq!(group(&by_key.body["groups"], "key_id", &a)["requests"], 10);
    assert_eq!(group(&by_key.body["groups"], "key_id", &b)["requests"], 4);
    assert_eq!(by_key.body["totals"]["requests"], 14);
    let by_op = app.owner_get("/v1/usage?group_by=operation").await;
    assert_eq!(
        group(&by_op.body["groups"], "operation", "verify")["requests"],
        4,
        "the default operation"
    );
    let by_day = app.owner_get("/v1/usage?group_by=day&days=3").await;
    assert_eq!(by_day.body["groups"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        group(&by_day.body["groups"], "date", &today)["requests"],
        14
    );
    for bad in [
        "/v1/usage?group_by=colour",
        "/v1/usage?days=0",
        "/v1/usage?days=400",
    ] {
        app.owner_get(bad)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }

    // Reported after the fact: tokens and cost count, requests do not.
    let reported = app
        .owner_post(
            "/v1/usage",
            json!({"key_id": b, "tokens": 7, "cost": "0.5", "operation": "verify"}),
        )
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.body);
    app.state.usage.flush().await;
    let b_report = app.owner_get(&format!("/v1/keys/{b}/usage?days=1")).await;
    assert_eq!(
        b_report.body["totals"],
        json!({"requests": 4, "valid": 4, "denied": 0, "tokens": 7, "cost": "0.50"})
    );

    // Any role reads; another workspace sees nothing.
    let viewer = app.member_token("viewer").await;
    assert_eq!(
        app.get(&format!("/v1/keys/{a}/usage"), &viewer)
            .await
            .status,
        StatusCode::OK
    );
    let (_, other) = app.second_workspace().await;
    app.get(&format!("/v1/keys/{a}/usage"), &other)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let theirs = app.get("/v1/usage?group_by=key", &other).await;
    assert_eq!(theirs.body["groups"], json!([]));
    assert_eq!(theirs.body["totals"]["requests"], 0);
}

async fn a_request_id_leads_back_to_its_key(app: &TestApp) {
    let (a, a_secret) = app.new_key("traced").await;
    let (_, b_secret) = app.new_key("other").await;
    verify(app, json!({"key": b_secret})).await;
    let request_id = verify(
        app,
        json!({"key": a_secret, "operation": "GET /v1/reports", "source_ip": "198.51.100.23"}),
    )
    .await;
    verify(app, json!({"key": b_secret})).await;
    app.state.usage.flush().await;

    let found = app.owner_get(&format!("/v1/requests/{request_id}")).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(found.body["request_id"], request_id.as_str());
    assert_eq!(found.body["key_id"], a.as_str());
    assert_eq!(found.body["operation"], "GET /v1/reports");
    assert_eq!(found.body["outcome"], "valid");
    assert_eq!(found.body["source_ip"], "198.51.100.23");
    assert!(found.body["at"].is_string());
    let display = found.body["key_display"].as_str().expect("display");
    assert!(
        display.contains('…') && display.len() < a_secret.len(),
        "{display}"
    );

    app.owner_get("/v1/requests/req_unknown1")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let (_, other) = app.second_workspace().await;
    app.get(&format!("/v1/requests/{request_id}"), &other)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

/// A server with a usage flush interval far longer than the test: whatever reaches the store
/// was written by the shutdown's final flush.
#[tokio::test]
async fn a_graceful_shutdown_writes_every_buffered_event() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let mut settings = ServerSettings::for_database(&url);
    settings.secret_file = dir.path().join("keygate.secret");
    settings.usage.flush_interval = Duration::from_secs(3600);
    let (state, bootstrapped) = prepare(&settings, Arc::new(SystemClock))
        .await
        .expect("prepare");
    let token = bootstrapped.expect("fresh store").token.expose().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let request = client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body);
        Reply::send(request)
    };
    let created = post("/v1/keys", json!({"name": "shutdown"})).await.body;
    let secret = created["secret"].as_str().expect("secret");
    let made = 40;
    for _ in 0..made {
        let reply = post("/v1/keys/verify", json!({"key": secret, "tokens": 2})).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    // Still in memory: the flusher has not run since the first tick.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(state.usage.depth() > 0, "the events are still buffered");
    let _ = stop.send(());
    server.await.expect("join").expect("serve");

    let store = connect(&url).await.expect("reopen");
    let today = chrono::Utc::now().date_naive();
    let rollups = store
        .usage_rollups(
            created["workspace_id"].as_str().expect("workspace"),
            &UsageQuery {
                key_id: created["id"].as_str().map(str::to_owned),
                identity_id: None,
                from: today,
                to: today,
            },
        )
        .await
        .expect("rollups");
    let requests: u64 = rollups.iter().map(|r| r.requests).sum();
    let tokens: u64 = rollups.iter().map(|r| r.tokens).sum();
    assert_eq!((requests, tokens), (made, 2 * made));
}
