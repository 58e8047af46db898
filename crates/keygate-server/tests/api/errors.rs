//! Bad input of every kind gets a 4xx with the one error shape, never a 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Reply, TestApp};

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let app = TestApp::spawn().await;
    app.owner_get("/v1/nothing-here")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/", "")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.owner_call(Method::PUT, "/v1/keys", Some(json!({})))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    app.owner_delete("/v1/keys/verify")
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    app.owner_get("/v1/keys/not-an-id")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn bad_bodies() {
    let app = TestApp::spawn().await;
    let raw = |body: String, content_type: &'static str| {
        let app = &app;
        async move {
            Reply::send(
                app.client
                    .post(format!("{}/v1/keys", app.base))
                    .bearer_auth(&app.owner_token)
                    .header("content-type", content_type)
                    .body(body),
            )
            .await
        }
    };
    let json = "application/json";
    for body in [
        "{not json",
        "{\"name\": 5}",
        "{}",
        "{\"name\":\"x\",\"surprise\":1}",
        "",
    ] {
        raw(body.to_owned(), json)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    }
    raw("name=x".to_owned(), "application/x-www-form-urlencoded")
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    raw(huge, json)
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
        let reply = app.owner_post("/v1/keys", body.clone()).await;
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
        let reply = app.owner_post("/v1/keys", body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body} → {}",
            reply.body
        );
    }
    for body in [json!({"key": 12}), json!({"key": "x", "cost": "lots"})] {
        app.owner_post("/v1/keys/verify", body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    }
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let app = TestApp::spawn().await;
    let ok = app.owner_get("/v1/keys").await;
    let id = ok
        .headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(id.starts_with("req_"));
    let health = app.get_anonymous("/healthz").await;
    assert!(health.headers().get("request-id").is_some());
    assert_eq!(health.status(), StatusCode::OK);
}

/// The wire types accept unknown fields (so an older CLI reads a newer server's answers), and
/// the server refuses them in a request at any depth, naming the field, so a typo inside
/// `limits` is an error rather than a silent default.
#[tokio::test]
async fn a_field_the_operation_does_not_take_is_refused_at_any_depth() {
    let app = TestApp::spawn().await;
    for (body, path) in [
        (json!({"name": "a", "surprise": 1}), "surprise"),
        (
            json!({"name": "b", "limits": {"rate_limits": [], "colour": "red"}}),
            "limits.colour",
        ),
        (
            json!({"name": "c", "limits": {"token_limit": {"limit": 5, "resett": "daily"}}}),
            "limits.token_limit.resett",
        ),
        (
            json!({"name": "d", "limits": {"rate_limits": [{"limit": 5, "window": "1m", "burst": 9}]}}),
            "limits.rate_limits.0.burst",
        ),
    ] {
        let reply = app.owner_post("/v1/keys", body.clone()).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_json");
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("`{path}`")), "{body} → {message}");
    }
    let listed = app.owner_get("/v1/keys").await;
    assert_eq!(listed.body["items"], json!([]), "nothing was created");

    let key = app.owner_post("/v1/keys", json!({"name": "e"})).await;
    let id = key.body["id"].as_str().unwrap_or_default().to_owned();
    app.owner_call(
        Method::PATCH,
        &format!("/v1/keys/{id}"),
        Some(json!({"limits": {"cost_limit": {"limit": "1.00", "currency": "EUR"}}})),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    let rule = app
        .owner_post(
            "/v1/routing-rules",
            json!({"name": "r", "mode": "fallback",
                   "targets": [{"provider": "openai", "region": "eu"}]}),
        )
        .await;
    assert_eq!(rule.status, StatusCode::BAD_REQUEST, "{}", rule.body);
    assert!(
        rule.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`targets.0.region`")),
        "{}",
        rule.body
    );
}
