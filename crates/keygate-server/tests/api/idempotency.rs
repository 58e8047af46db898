//! A retried POST with the same Idempotency-Key has no second effect.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_retried_create_returns_the_first_answer_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "once"});
    let first = app
        .owner_post_idempotent("/v1/keys", "create-once-1", body.clone())
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = app
        .owner_post_idempotent("/v1/keys", "create-once-1", body)
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(
        second.body, first.body,
        "the replay is the first answer, secret included"
    );
    assert_eq!(
        second
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let listed = app.owner_get("/v1/keys").await;
    assert_eq!(listed.body["items"].as_array().expect("items").len(), 1);

    // The stored answer holds the secret only encrypted.
    let secret = first.body["secret"].as_str().expect("secret");
    let db = std::fs::read(app.dir.path().join("keygate.db")).unwrap_or_default();
    let wal = std::fs::read(app.dir.path().join("keygate.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the plain secret must not be in the database file"
        );
    }
}

#[tokio::test]
async fn reusing_a_key_for_a_different_request_is_refused() {
    let app = TestApp::spawn().await;
    app.owner_post_idempotent("/v1/keys", "reused", json!({"name": "a"}))
        .await;
    let other = app
        .owner_post_idempotent("/v1/keys", "reused", json!({"name": "b"}))
        .await;
    other.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
}

#[tokio::test]
async fn a_failed_request_can_be_retried_with_the_same_key() {
    let app = TestApp::spawn().await;
    // The failure had no effect, so the same body runs again (and fails again).
    for _ in 0..2 {
        app.owner_post_idempotent("/v1/keys", "retry-after-fix", json!({"name": ""}))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}

#[tokio::test]
async fn concurrent_duplicates_create_one_key() {
    let app = TestApp::spawn().await;
    let attempts =
        (0..8).map(|_| app.owner_post_idempotent("/v1/keys", "racing", json!({"name": "raced"})));
    let replies = futures::future::join_all(attempts).await;
    let created: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert!(!created.is_empty());
    for r in &replies {
        assert!(
            r.status == StatusCode::CREATED || r.code() == "idempotency_key_in_use",
            "{} {}",
            r.status,
            r.body
        );
    }
    let ids: std::collections::HashSet<_> = created.iter().map(|r| r.body["id"].clone()).collect();
    assert_eq!(ids.len(), 1, "every success is the same key");
    let listed = app.owner_get("/v1/keys").await;
    assert_eq!(listed.body["items"].as_array().expect("items").len(), 1);
}

#[tokio::test]
async fn idempotent_revoke_and_member_creation() {
    let app = TestApp::spawn().await;
    let (id, _) = app.new_key("k").await;
    // Each request sent twice with the same key: the second is the first's answer.
    let path = format!("/v1/keys/{id}/revoke");
    let revoke = || app.owner_post_idempotent(&path, "revoke-1", json!({}));
    let (a, b) = (revoke().await, revoke().await);
    assert_eq!(a.body, b.body);
    let member = json!({"name": "x", "role": "viewer"});
    let add = || app.owner_post_idempotent("/v1/members", "member-1", member.clone());
    let (m1, m2) = (add().await, add().await);
    assert_eq!(m1.body["id"], m2.body["id"]);
    let members = app.owner_get("/v1/members").await;
    assert_eq!(members.body["items"].as_array().expect("items").len(), 2);
}
