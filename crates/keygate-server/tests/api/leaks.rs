//! `POST /v1/leaks`: a reported key is dead on the next request (or disabled, or only
//! recorded, by the workspace's leak policy), audited as `key.leaked` with where it was found,
//! and nothing is revealed about other workspaces' keys; the `reporter` role may do this and
//! nothing else.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::TestApp;

async fn code(app: &TestApp, token: &str, secret: &str) -> String {
    app.post("/v1/keys/verify", token, json!({ "key": secret }))
        .await
        .body["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_reported_key_is_dead_on_the_next_request_and_the_report_reveals_no_other_workspace() {
    let app = TestApp::spawn().await;
    let reporter = app.member_token("reporter").await;
    let (leaked_id, leaked) = app.new_key("leaked").await;
    let (_, kept) = app.new_key("kept").await;
    let (_, other_owner) = app.second_workspace().await;
    let foreign = app
        .post("/v1/keys", &other_owner, json!({"name": "theirs"}))
        .await
        .body["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert_eq!(code(&app, &app.owner_token, &leaked).await, "valid");

    let reply = app
        .post(
            "/v1/leaks",
            &reporter,
            json!([
                {"token": leaked, "type": "keygate_api_key", "url": "https://github.com/example/app/blob/0123/.env#L3", "source": "github"},
                {"token": foreign, "source": "github"},
                {"token": "kg_live_abcdefghijklmnopqrstuvwxyz012345"},
                {"token": "not a key at all"}
            ]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let items = reply.body["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["matched"], true);
    assert_eq!(items[0]["key_id"], leaked_id.as_str());
    assert_eq!(items[0]["action"], "revoked");
    for item in &items[1..] {
        assert_eq!(item, &json!({"token": item["token"], "matched": false}));
    }
    let text = reply.body.to_string();
    assert!(
        !text.contains(&leaked) && !text.contains(&foreign),
        "no token echoed: {text}"
    );

    assert_eq!(code(&app, &app.owner_token, &leaked).await, "revoked");
    assert_eq!(code(&app, &app.owner_token, &kept).await, "valid");
    assert_eq!(
        code(&app, &other_owner, &foreign).await,
        "valid",
        "another workspace's key is untouched"
    );

    let audit = app.owner_get("/v1/audit?action=key.leaked").await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    let rows = audit.body["items"].as_array().expect("rows").clone();
    assert_eq!(rows.len(), 1, "{}", audit.body);
    assert_eq!(rows[0]["target_id"], leaked_id.as_str());
    let note = &rows[0]["changes"]["note"];
    assert_eq!(
        note["url"],
        "https://github.com/example/app/blob/0123/.env#L3"
    );
    assert_eq!(note["source"], "github");
    assert_eq!(note["action"], "revoked");
    assert_eq!(rows[0]["changes"]["status"]["after"], "revoked");
    assert!(!audit.body.to_string().contains(&leaked));

    // Reported again: already revoked, recorded again.
    let again = app
        .post("/v1/leaks", &reporter, json!([{ "token": leaked }]))
        .await;
    assert_eq!(again.body["items"][0]["action"], "already_revoked");
}

#[tokio::test]
async fn the_leak_policy_decides_what_a_report_does() {
    let app = TestApp::spawn().await;
    app.patch_workspace(json!({"leak_policy": "disable"})).await;
    let (_, disabled) = app.new_key("disable me").await;
    let reply = app
        .owner_post("/v1/leaks", json!([{ "token": disabled }]))
        .await;
    assert_eq!(
        reply.body["items"][0]["action"], "disabled",
        "{}",
        reply.body
    );
    assert_eq!(code(&app, &app.owner_token, &disabled).await, "disabled");

    let workspace = app.patch_workspace(json!({"leak_policy": "notify"})).await;
    assert_eq!(workspace["leak_policy"], "notify");
    let (_, noted) = app.new_key("notify me").await;
    let reply = app
        .owner_post("/v1/leaks", json!([{ "token": noted }]))
        .await;
    assert_eq!(reply.body["items"][0]["action"], "notified");
    assert_eq!(code(&app, &app.owner_token, &noted).await, "valid");
    let audit = app.owner_get("/v1/audit?action=key.leaked").await;
    assert_eq!(audit.body["items"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_reporter_reports_and_does_nothing_else_and_bad_reports_are_refused() {
    let app = TestApp::spawn().await;
    let reporter = app.member_token("reporter").await;
    let viewer = app.member_token("viewer").await;
    let (_, secret) = app.new_key("k").await;
    for (method, path, body) in [
        ("GET", "/v1/keys", None),
        ("POST", "/v1/keys", Some(json!({"name": "x"}))),
        ("POST", "/v1/keys/verify", Some(json!({ "key": secret }))),
        ("GET", "/v1/audit", None),
        ("GET", "/v1/workspace", None),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        app.call(method, path, &reporter, body)
            .await
            .assert_error(StatusCode::FORBIDDEN, "insufficient_role");
    }
    app.post("/v1/leaks", &viewer, json!([{ "token": secret }]))
        .await
        .assert_error(StatusCode::FORBIDDEN, "insufficient_role");
    assert_eq!(code(&app, &app.owner_token, &secret).await, "valid");

    let too_many: Vec<Value> = (0..101).map(|_| json!({"token": "x"})).collect();
    for body in [
        json!({"token": secret}),
        json!([]),
        Value::Array(too_many),
        json!([{"token": ""}]),
        json!([{"token": secret, "colour": "red"}]),
        json!([{"token": secret, "url": "x".repeat(2049)}]),
    ] {
        let reply = app.post("/v1/leaks", &reporter, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
    }
    assert_eq!(
        code(&app, &app.owner_token, &secret).await,
        "valid",
        "a refused report changes nothing"
    );
}

/// A leaked *old* secret of a rotated key is not the key: reporting it ends that secret and
/// leaves the secret its owner rotated to working; once dead, reporting it does nothing. A
/// token repeated in one report is handled once.
#[tokio::test]
async fn a_leaked_old_secret_ends_that_secret_not_the_key() {
    let app = TestApp::spawn().await;
    let (id, old) = app.new_key("rotated").await;
    let rotated = app
        .owner_post(&format!("/v1/keys/{id}/rotate"), json!({"grace": "1h"}))
        .await;
    let new = rotated.body["secret"].as_str().expect("secret").to_owned();
    assert_eq!(
        code(&app, &app.owner_token, &old).await,
        "valid",
        "in its grace period"
    );

    let reply = app
        .owner_post("/v1/leaks", json!([{ "token": old }, { "token": old }]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["items"][0]["action"], "old_secret_ended");
    assert_eq!(reply.body["items"][1], reply.body["items"][0]);
    assert_ne!(code(&app, &app.owner_token, &old).await, "valid");
    assert_eq!(
        code(&app, &app.owner_token, &new).await,
        "valid",
        "the key lives on"
    );

    let again = app.owner_post("/v1/leaks", json!([{ "token": old }])).await;
    assert_eq!(again.body["items"][0]["action"], "secret_expired");
    assert_eq!(code(&app, &app.owner_token, &new).await, "valid");
    let audit = app.owner_get("/v1/audit?action=key.leaked").await;
    assert_eq!(
        audit.body["items"].as_array().map(Vec::len),
        Some(2),
        "one row per handled report, none for the repeat: {}",
        audit.body
    );
}
