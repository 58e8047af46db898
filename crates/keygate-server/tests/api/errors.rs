//! Bad input of every kind gets a 4xx with the one error shape, never a 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Reply, TestApp};

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let app = TestApp::spawn().await;
    app.get("/v1/nothing-here", &app.owner_token)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/", "")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.call(Method::PUT, "/v1/keys", &app.owner_token, Some(json!({})))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    app.call(Method::DELETE, "/v1/keys/verify", &app.owner_token, None)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    app.get("/v1/keys/not-an-id", &app.owner_token)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn bad_bodies() {
    let app = TestApp::spawn().await;
    let raw = |body: &'static str, content_type: &'static str| {
        let app = &app;
        async move {
            let response = app
                .client
                .post(format!("{}/v1/keys", app.base))
                .bearer_auth(&app.owner_token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .expect("send");
            Reply::from(response).await
        }
    };
    raw("{not json", "application/json")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    raw("{\"name\": 5}", "application/json")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    raw("{}", "application/json")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    raw("{\"name\":\"x\",\"surprise\":1}", "application/json")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    raw("name=x", "application/x-www-form-urlencoded")
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    raw("", "application/json")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_json");

    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let response = app
        .client
        .post(format!("{}/v1/keys", app.base))
        .bearer_auth(&app.owner_token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    Reply::from(response)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    for body in [
        json!({"name": "x", "expires_in": "forever"}),
        json!({"name": "x", "expires_at": "yesterday"}),
        json!({"name": "x", "expires_in": "1d", "expires_at": "2099-01-01T00:00:00Z"}),
        json!({"name": "x", "environment": "LIVE!"}),
        json!({"name": "x", "permissions": ["has space"]}),
        json!({"name": "x", "scope": []}),
        json!({"name": "x".repeat(101)}),
    ] {
        let reply = app.post("/v1/keys", &app.owner_token, body.clone()).await;
        assert!(reply.status.is_client_error(), "{body} → {}", reply.status);
        assert!(
            reply.code() == "invalid_request" || reply.code() == "invalid_json",
            "{}",
            reply.body
        );
    }
    for body in [
        json!({"name": "x", "limits": {"rate_limits": [{"limit": 0, "window": "1m"}]}}),
        json!({"name": "x", "limits": {"cost_limit": {"limit": "-1", "reset": "daily"}}}),
        json!({"name": "x", "limits": {"cost_limit": {"limit": "0.0000001"}}}),
        json!({"name": "x", "limits": {"token_limit": {"limit": 5, "reset": "hourly"}}}),
    ] {
        let reply = app.post("/v1/keys", &app.owner_token, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body} → {}",
            reply.body
        );
    }
    let verify = app
        .post("/v1/keys/verify", &app.owner_token, json!({"key": 12}))
        .await;
    verify.assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    let verify = app
        .post(
            "/v1/keys/verify",
            &app.owner_token,
            json!({"key": "x", "cost": "lots"}),
        )
        .await;
    verify.assert_error(StatusCode::BAD_REQUEST, "invalid_json");
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let app = TestApp::spawn().await;
    let ok = app.get("/v1/keys", &app.owner_token).await;
    let id = ok
        .headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(id.starts_with("req_"));
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("send");
    assert!(health.headers().get("request-id").is_some());
    assert_eq!(health.status(), StatusCode::OK);
}
