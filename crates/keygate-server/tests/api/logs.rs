//! No secret ever reaches a log line: run every operation that handles one, then search
//! everything the servers of this test binary logged for each issued secret.

use serde_json::json;

use crate::helpers::{captured_logs, TestApp};

#[tokio::test]
async fn no_issued_secret_appears_in_the_logs() {
    let app = TestApp::spawn().await;
    let mut secrets = vec![app.owner_token.clone()];

    let created = app.create_key(json!({"name": "logged?"})).await;
    let id = created["id"].as_str().expect("id").to_owned();
    secrets.push(created["secret"].as_str().expect("secret").to_owned());
    let regenerated = app.key_action(&id, "regenerate").await;
    secrets.push(
        regenerated.body["secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    );
    let rotated = app.key_action(&id, "rotate").await;
    secrets.push(rotated.body["secret"].as_str().expect("secret").to_owned());
    let member = app
        .owner_post("/v1/members", json!({"name": "m", "role": "editor"}))
        .await;
    secrets.push(member.body["token"].as_str().expect("token").to_owned());
    let legacy = "legacy-secret-in-logs-test-0123";
    app.owner_post("/v1/keys/import", json!({"name": "legacy", "key": legacy}))
        .await;
    secrets.push(legacy.to_owned());

    for secret in &secrets {
        app.verify(json!({"key": secret})).await;
        // A mistyped one too: error paths are where secrets tend to leak.
        app.verify(json!({"key": format!("{secret}x")})).await;
    }
    app.get("/v1/keys", secrets.last().expect("one")).await;
    app.owner_delete(&format!("/v1/keys/{id}")).await;
    app.state.last_used.flush().await;

    let logs = captured_logs();
    assert!(
        !logs.is_empty(),
        "logging must be captured for this test to mean anything"
    );
    for secret in &secrets {
        let body = &secret[secret.len().saturating_sub(20)..];
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
        assert!(!logs.contains(body), "part of a secret reached the logs");
    }
}
