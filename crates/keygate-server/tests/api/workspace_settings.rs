//! Workspace settings end to end: a prefix of the workspace's own for new keys (old keys keep
//! working), and several rate windows on one key, each reported, the tightest in the headers.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_workspace_with_its_own_prefix_issues_and_verifies_its_keys() {
    let app = TestApp::spawn().await;
    let (old_id, old) = app.new_key("before").await;
    assert!(old.starts_with("kg_live_"));
    for bad in ["ACME", "a", "toolongpx", "1abc", "ac-me", "", "kgm"] {
        let reply = app
            .owner_patch("/v1/workspace", json!({ "key_prefix": bad }))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.body
        );
    }
    let workspace = app.patch_workspace(json!({"key_prefix": "acme2"})).await;
    assert_eq!(workspace["key_prefix"], "acme2");
    let (_, new) = app.new_key("after").await;
    assert!(new.starts_with("acme2_live_"), "{new}");
    assert_eq!(app.verify_code(&new).await, "valid");
    assert_eq!(
        app.verify_code(&old).await,
        "valid",
        "keys issued before keep working"
    );
    let regenerated = app.key_action(&old_id, "regenerate").await;
    let secret = regenerated.body["secret"].as_str().expect("secret");
    assert!(secret.starts_with("acme2_live_"), "{secret}");
    assert_eq!(app.verify_code(secret).await, "valid");
    assert_eq!(app.verify_code(&old).await, "invalid_api_key");
}

#[tokio::test]
async fn several_rate_windows_are_each_reported_and_the_tightest_sets_the_headers() {
    let app = TestApp::spawn().await;
    let created = app
        .create_key(json!({"name": "three windows", "limits": {"rate_limits": [
            {"limit": 10, "window": "1s"},
            {"limit": 600, "window": "1m"},
            {"limit": 10_000, "window": "1d"}
        ]}}))
        .await;
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let first = app
        .owner_post("/v1/keys/verify", json!({ "key": secret }))
        .await;
    assert_eq!(first.body["code"], "valid", "{}", first.body);
    let rates: Vec<(u64, i64)> = first.body["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .filter(|l| l["kind"] == "rate")
        .map(|l| {
            (
                l["window_secs"].as_u64().unwrap_or_default(),
                l["remaining"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(rates.len(), 3, "{}", first.body);
    for expected in [(1, 9), (60, 599), (86_400, 9_999)] {
        assert!(rates.contains(&expected), "{expected:?} in {rates:?}");
    }
    assert_eq!(first.headers["ratelimit-limit"], "10");
    assert_eq!(first.headers["ratelimit-remaining"], "9");
    for _ in 0..9 {
        assert_eq!(app.verify_code(&secret).await, "valid");
    }
    let refused = app
        .owner_post("/v1/keys/verify", json!({ "key": secret }))
        .await;
    assert_eq!(refused.body["code"], "rate_limited");
    assert_eq!(refused.headers["ratelimit-limit"], "10");
    assert_eq!(refused.headers["ratelimit-remaining"], "0");
    app.clock.advance_millis(1_000);
    assert_eq!(
        app.verify_code(&secret).await,
        "valid",
        "the second window has room"
    );
}
