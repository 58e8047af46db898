//! Rotation: the old secret keeps working for the grace period, then dies.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn old_secret_works_inside_the_grace_period_and_not_after() {
    let app = TestApp::spawn().await;
    let (id, old) = app.new_key("rotating").await;
    let rotated = app
        .owner_post(&format!("/v1/keys/{id}/rotate"), json!({"grace": "24h"}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new = rotated.body["secret"].as_str().expect("secret").to_owned();
    assert!(rotated.body["old_secret_expires_at"].is_string());
    assert_ne!(new, old);

    assert_eq!(app.verify_code(&old).await, "valid");
    assert_eq!(app.verify_code(&new).await, "valid");
    app.clock
        .advance_millis(Duration::hours(23).num_milliseconds());
    assert_eq!(app.verify_code(&old).await, "valid");

    app.clock
        .advance_millis(Duration::hours(1).num_milliseconds());
    let after = app.verify(json!({"key": old})).await;
    assert_eq!(after["code"], "expired");
    assert_eq!(after["status"], 401);
    assert_eq!(app.verify_code(&new).await, "valid");
}

#[tokio::test]
async fn rotate_defaults_and_bounds_the_grace_period() {
    let app = TestApp::spawn().await;
    let (id, _) = app.new_key("r").await;
    let default = app
        .client
        .post(format!("{}/v1/keys/{id}/rotate", app.base))
        .bearer_auth(&app.owner_token)
        .send()
        .await
        .expect("send");
    assert_eq!(default.status(), StatusCode::OK);
    app.owner_post(&format!("/v1/keys/{id}/rotate"), json!({"grace": "90d"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    app.owner_post(&format!("/v1/keys/{id}/rotate"), json!({"grace": "later"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}
