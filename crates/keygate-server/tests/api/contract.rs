//! What schemathesis (`scripts/contract`, `--checks all`) found where the server and its own
//! document disagreed: bodies that are not objects, whole numbers written as floats, counters
//! that overflowed into 500s, filters that refused instead of matching nothing, refusals with
//! the wrong status, and operations the document described wrongly.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp};

both_backends!(usage_counters_saturate_and_every_read_still_answers);

/// A request with a raw JSON body as the owner.
async fn raw(app: &TestApp, method: &str, path: &str, body: &str) -> Reply {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let response = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(&app.owner_token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("send");
    Reply::from(response).await
}

async fn document(app: &TestApp) -> Value {
    app.get_anonymous("/openapi.json")
        .await
        .json()
        .await
        .expect("the document is JSON")
}

/// Every documented operation as (method, path with ids filled in, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let path = path
                .replace("{id}", "key_doesnotexist")
                .replace("{request_id}", "req_doesnotexist");
            out.push((method.clone(), path, operation.clone()));
        }
    }
    out
}

#[tokio::test]
async fn a_body_of_another_json_type_is_refused_by_every_operation() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut checked = 0;
    for (method, path, operation) in operations(&doc) {
        if operation.get("requestBody").is_none() {
            continue;
        }
        // A body of another JSON type than documented: not an object, or (for the one
        // operation taking a list, `POST /v1/leaks`) not an array.
        let takes_a_list =
            operation["requestBody"]["content"]["application/json"]["schema"]["type"] == "array";
        let bodies = if takes_a_list {
            [
                "{}",
                "{\"token\":\"x\"}",
                "\"x\"",
                "1",
                " \n{}",
                "null",
                "true",
            ]
        } else {
            ["[]", "[null,null]", "\"x\"", "1", " \n[{}]", "null", "true"]
        };
        for body in bodies {
            raw(&app, &method, &path, body)
                .await
                .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
            checked += 1;
        }
        // A field no operation takes is refused too (optional bodies included: rotate).
        if !takes_a_list {
            raw(&app, &method, &path, "{\"surely_not_a_field\": 1}")
                .await
                .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
        }
    }
    assert!(checked >= 7 * 10, "{checked} requests");
    // An object still reaches the handler (here: the workspace, all of whose fields are
    // optional), whitespace before it included.
    let ok = raw(&app, "patch", "/v1/workspace", " \r\n\t{}").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

async fn usage_counters_saturate_and_every_read_still_answers(app: &TestApp) {
    let (id, _) = app.new_key("heavy").await;
    let max = i64::MAX;
    // Two reports of i64::MAX tokens into the same daily rollup, flushed apart so the second
    // is added by the database; then one into another rollup, so reads sum two maximal rows.
    for operation in ["chat", "chat", "embed"] {
        let reply = app
            .owner_post(
                "/v1/usage",
                json!({"key_id": id, "tokens": max, "cost": "1000", "operation": operation}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        app.state.usage.flush().await;
    }
    let key_usage = app.owner_get(&format!("/v1/keys/{id}/usage")).await;
    assert_eq!(key_usage.status, StatusCode::OK, "{}", key_usage.body);
    let by_operation = key_usage.body["by_operation"]
        .as_array()
        .expect("by_operation");
    for operation in ["chat", "embed"] {
        let found = by_operation
            .iter()
            .find(|o| o["operation"] == operation)
            .unwrap_or_else(|| panic!("{operation}: {}", key_usage.body));
        // Saturated: not wrapped, not a float, and not an error that loses the batch.
        assert_eq!(found["tokens"], json!(max), "{operation}");
    }
    // Sums over rows at the maximum stay at it (the answer's counts are `int64`).
    assert_eq!(
        key_usage.body["totals"]["tokens"],
        json!(max),
        "{}",
        key_usage.body
    );
    for group_by in ["key", "project", "operation", "day"] {
        let totals = app
            .owner_get(&format!("/v1/usage?group_by={group_by}"))
            .await;
        assert_eq!(totals.status, StatusCode::OK, "{group_by}: {}", totals.body);
        assert_eq!(
            totals.body["totals"]["tokens"],
            json!(max),
            "{group_by}: {}",
            totals.body
        );
    }
    let by_operation = app.owner_get("/v1/usage?group_by=operation").await;
    let chat = by_operation.body["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["operation"] == "chat")
        .cloned()
        .unwrap_or_default();
    assert_eq!(chat["tokens"], json!(max), "{}", by_operation.body);
}

#[tokio::test]
async fn whole_numbers_written_as_floats_are_integers_in_every_body() {
    let app = TestApp::spawn().await;
    let created = app
        .create_key(json!({
            "name": "floats",
            "limits": {
                "rate_limits": [{"limit": 48.0, "window": 60.0}, {"limit": 1e3, "window": "1h"}],
                "token_limit": {"limit": 2e3}
            }
        }))
        .await;
    assert_eq!(created["limits"]["rate_limits"][0]["limit"], 48);
    assert_eq!(created["limits"]["rate_limits"][0]["window"], "1m");
    assert_eq!(created["limits"]["rate_limits"][1]["limit"], 1000);
    assert_eq!(created["limits"]["token_limit"]["limit"], 2000);
    let id = created["id"].as_str().expect("id");
    let secret = created["secret"].as_str().expect("secret");

    let patched = app
        .owner_call(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"limits": {"token_limit": {"limit": 5.0}}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["limits"]["token_limit"]["limit"], 5);

    let workspace = app
        .patch_workspace(json!({
            "default_rate_limits": [{"limit": 100.0, "window": "1m"}],
            "rate_limit_policies": {"slow": [{"limit": 2.0, "window": 1e1}]}
        }))
        .await;
    assert_eq!(workspace["default_rate_limits"][0]["limit"], 100);

    let verified = app.verify(json!({"key": secret, "tokens": 2.0})).await;
    assert_eq!(verified["code"], "valid", "{verified}");
    let reported = app
        .owner_post("/v1/usage", json!({"key_id": id, "tokens": 1.0}))
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.body);
    assert_eq!(reported.body["tokens"], 1);

    let rule = app
        .owner_post(
            "/v1/routing-rules",
            json!({"name": "split", "mode": "split", "targets": [
                {"provider": "alpha", "weight": 70.0},
                {"provider": "beta", "weight": 3e1}
            ]}),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.body);
    assert_eq!(rule.body["targets"][0]["weight"], 70);
    assert_eq!(rule.body["targets"][1]["weight"], 30);

    // Only whole numbers: fractions, signs and values over the field's maximum stay 400.
    for limits in [
        json!({"rate_limits": [{"limit": 2.5, "window": "1m"}]}),
        json!({"rate_limits": [{"limit": -1.0, "window": "1m"}]}),
        json!({"rate_limits": [{"limit": 5, "window": 60.5}]}),
        json!({"token_limit": {"limit": 0.5}}),
        json!({"token_limit": {"limit": -1}}),
        json!({"token_limit": {"limit": 2e19}}),
    ] {
        app.owner_post("/v1/keys", json!({"name": "bad", "limits": limits}))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    }
    for tokens in [json!(2.5), json!(-2.0), json!(1e20)] {
        app.owner_post("/v1/keys/verify", json!({"key": secret, "tokens": tokens}))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    }
    for weight in [
        json!(1.5),
        json!(-1),
        json!(4_294_967_296_u64),
        json!(4294967296.0),
    ] {
        app.owner_post(
            "/v1/routing-rules",
            json!({"name": "bad", "mode": "split", "targets": [{"provider": "alpha", "weight": weight}]}),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    }
}

#[tokio::test]
async fn audit_filters_combine_with_failed_attempts_as_and() {
    let app = TestApp::spawn().await;
    app.verify(json!({"key": "kg_live_0000000000000000000000000000x"}))
        .await;
    app.state.usage.flush().await;
    let all = app.owner_get("/v1/audit?action=auth.failed").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["items"].as_array().map(Vec::len), Some(1));
    for filter in [
        "key_id=key_x",
        "actor=mem_x",
        "actor=unauthenticated",
        "key_id=key_x&actor=system",
    ] {
        let reply = app
            .owner_get(&format!("/v1/audit?action=auth.failed&{filter}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{filter}: {}", reply.body);
        assert_eq!(reply.body["items"], json!([]), "{filter}");
        assert_eq!(reply.body["next_cursor"], Value::Null, "{filter}");
    }
}

#[tokio::test]
async fn state_conflicts_and_missing_references_answer_409() {
    let app = TestApp::spawn().await;
    let imported = app
        .owner_create(
            "/v1/keys/import",
            json!({"name": "old", "key": "sk-legacy-contract-0123456789"}),
        )
        .await;
    let id = imported["id"].as_str().expect("id");
    for (action, body) in [("rotate", json!({})), ("regenerate", json!({}))] {
        app.owner_post(&format!("/v1/keys/{id}/{action}"), body)
            .await
            .assert_error(StatusCode::CONFLICT, "legacy_key");
    }
    app.owner_call(
        Method::PATCH,
        &format!("/v1/keys/{id}"),
        Some(json!({"limits": {"token_limit": {"limit": 10}}})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "legacy_key");
    // Clearing limits it does not have, or any other change, is fine.
    let renamed = app
        .owner_call(
            Method::PATCH,
            &format!("/v1/keys/{id}"),
            Some(json!({"name": "older", "limits": {}})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);

    let (key_id, _) = app.new_key("plain").await;
    let missing_project = app
        .owner_post("/v1/keys", json!({"name": "x", "scope": ["proj_nope"]}))
        .await;
    missing_project.assert_error(StatusCode::CONFLICT, "unknown_reference");
    assert!(
        missing_project.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("proj_nope")),
        "{}",
        missing_project.body
    );
    app.owner_call(
        Method::PATCH,
        &format!("/v1/keys/{key_id}"),
        Some(json!({"scope": ["proj_nope"]})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "unknown_reference");
    app.owner_post(
        "/v1/keys/import",
        json!({"name": "y", "key": "sk-legacy-contract-abcdefghij", "scope": ["proj_nope"]}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "unknown_reference");
    let missing_rule = app
        .owner_post(
            "/v1/keys",
            json!({"name": "z", "routing_rule_id": "rr_doesnotexist"}),
        )
        .await;
    missing_rule.assert_error(StatusCode::CONFLICT, "unknown_reference");
    assert!(
        missing_rule.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("rr_doesnotexist")),
        "{}",
        missing_rule.body
    );
    app.owner_call(
        Method::PATCH,
        &format!("/v1/keys/{key_id}"),
        Some(json!({"routing_rule_id": "rr_doesnotexist"})),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "unknown_reference");
    // What is not an id at all is still a bad request.
    app.owner_post("/v1/keys", json!({"name": "x", "scope": ["not a project"]}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    app.owner_post("/v1/keys", json!({"name": "x", "routing_rule_id": "nope"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn every_operation_documents_503() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    for (method, path, operation) in operations(&doc) {
        let unavailable = &operation["responses"]["503"];
        assert_eq!(
            unavailable["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorResponse",
            "{method} {path}"
        );
        assert!(
            unavailable["headers"]["Retry-After"].is_object(),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn a_body_is_documented_as_required_exactly_when_the_server_requires_one() {
    let app = TestApp::spawn().await;
    let (key_id, _) = app.new_key("rotated").await;
    let doc = document(&app).await;
    let mut optional = Vec::new();
    for (method, path, operation) in operations(&doc) {
        let Some(body) = operation.get("requestBody") else {
            continue;
        };
        let path = path.replace("key_doesnotexist", &key_id);
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let reply = app.owner_call(method.clone(), &path, None).await;
        if body["required"] == json!(false) {
            assert!(reply.status.is_success(), "{method} {path}: {}", reply.body);
            optional.push(path);
        } else {
            assert_eq!(body["required"], json!(true), "{method} {path}");
            assert!(
                reply.status == StatusCode::BAD_REQUEST
                    || reply.status == StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {path} needs a body: {} {}",
                reply.status,
                reply.body
            );
        }
    }
    assert_eq!(optional, [format!("/v1/keys/{key_id}/rotate")]);
    // An empty JSON body is the same as none.
    let empty = raw(&app, "post", &format!("/v1/keys/{key_id}/rotate"), "").await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
}

#[tokio::test]
async fn the_documented_bounds_of_counts_are_the_servers() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    for (schema, field, minimum) in [
        ("RateWindow", "limit", 1),
        ("TokenLimit", "limit", 0),
        ("UsageReported", "tokens", 0),
        ("Settled", "tokens", 0),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(property["maximum"], json!(u64::MAX), "{schema}.{field}");
        assert_eq!(property["minimum"], json!(minimum), "{schema}.{field}");
        assert!(
            property.get("format").is_none(),
            "{schema}.{field}: int64 would bound it below u64::MAX"
        );
    }
    // The limits take every u64 the document allows, and nothing above.
    let created = app
        .create_key(json!({"name": "big", "limits": {
            "rate_limits": [{"limit": u64::MAX, "window": "1m"}],
            "token_limit": {"limit": 9_223_372_036_854_775_808_u64}
        }}))
        .await;
    assert_eq!(
        created["limits"]["rate_limits"][0]["limit"],
        json!(u64::MAX)
    );
    let secret = created["secret"].as_str().expect("secret");
    assert_eq!(app.verify_code(secret).await, "valid");
    app.owner_post(
        "/v1/keys",
        json!({"name": "bigger", "limits": {"token_limit": {"limit": 18446744073709551616.0}}}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    let reported = app
        .owner_post(
            "/v1/usage",
            json!({"key_id": created["id"], "tokens": u64::MAX}),
        )
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.body);
    assert_eq!(reported.body["tokens"], json!(u64::MAX));
}
