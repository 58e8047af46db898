//! Every verify code, in the documented order, and the proof that a malformed key costs no
//! store lookup.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn every_authentication_code() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.new_key("codes").await;

    let valid = app.verify(json!({"key": secret})).await;
    assert_eq!(valid["valid"], true);
    assert_eq!(valid["code"], "valid");
    assert_eq!(valid["status"], 200);
    let key = &valid["key"];
    for field in [
        "id",
        "name",
        "workspace_id",
        "environment",
        "scope",
        "permissions",
        "expires_at",
        "metadata",
        "legacy",
    ] {
        assert!(key.get(field).is_some(), "key.{field} missing: {valid}");
    }
    assert_eq!(key["id"], id.as_str());
    assert_eq!(key["workspace_id"], app.workspace_id.as_str());

    let missing = app.verify(json!({})).await;
    assert_eq!(
        (missing["code"].as_str(), missing["status"].as_u64()),
        (Some("missing_api_key"), Some(401))
    );
    assert_eq!(missing["valid"], false);
    let empty = app.verify(json!({"key": ""})).await;
    assert_eq!(empty["code"], "missing_api_key");

    let mut typo = secret.clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    let malformed = app.verify(json!({"key": typo})).await;
    assert_eq!(
        (malformed["code"].as_str(), malformed["status"].as_u64()),
        (Some("malformed_api_key"), Some(401))
    );
    assert_eq!(app.verify_code("not a key").await, "malformed_api_key");

    // Well-formed, right checksum, never issued.
    let invented = keygate_core::PlainKey::generate(
        &keygate_server::default_prefix(),
        &keygate_core::EnvTag::live(),
    );
    let unknown = app.verify(json!({"key": invented.expose()})).await;
    assert_eq!(
        (unknown["code"].as_str(), unknown["status"].as_u64()),
        (Some("invalid_api_key"), Some(401))
    );
    assert_eq!(unknown["key"], json!(null));

    let (d_id, d_secret) = app.new_key("disabled").await;
    app.key_action(&d_id, "disable").await;
    let disabled = app.verify(json!({"key": d_secret})).await;
    assert_eq!(
        (disabled["code"].as_str(), disabled["status"].as_u64()),
        (Some("disabled"), Some(401))
    );

    let (r_id, r_secret) = app.new_key("revoked").await;
    app.key_action(&r_id, "revoke").await;
    let revoked = app.verify(json!({"key": r_secret})).await;
    assert_eq!(
        (revoked["code"].as_str(), revoked["status"].as_u64()),
        (Some("revoked"), Some(401))
    );

    let expiring = app
        .create_key(json!({"name": "expiring", "expires_in": "1h"}))
        .await;
    let e_secret = expiring["secret"].as_str().expect("secret");
    assert_eq!(app.verify_code(e_secret).await, "valid");
    app.clock
        .advance_millis(Duration::hours(1).num_milliseconds());
    let expired = app.verify(json!({"key": e_secret})).await;
    assert_eq!(
        (expired["code"].as_str(), expired["status"].as_u64()),
        (Some("expired"), Some(401))
    );
}

#[tokio::test]
async fn project_and_permission_checks_answer_forbidden() {
    let app = TestApp::spawn().await;
    let a = app.owner_post("/v1/projects", json!({"name": "a"})).await;
    let b = app.owner_post("/v1/projects", json!({"name": "b"})).await;
    let (a, b) = (
        a.body["id"].as_str().expect("a"),
        b.body["id"].as_str().expect("b"),
    );
    let created = app
        .create_key(
            json!({"name": "scoped", "scope": [a], "permissions": ["results:read", "scenarios:*"]}),
        )
        .await;
    let secret = created["secret"].as_str().expect("secret");

    let ok = app
        .verify(
            json!({"key": secret, "project": a, "permissions": ["results:read", "scenarios:run"]}),
        )
        .await;
    assert_eq!(ok["code"], "valid", "{ok}");
    let wrong_project = app.verify(json!({"key": secret, "project": b})).await;
    assert_eq!(
        (
            wrong_project["code"].as_str(),
            wrong_project["status"].as_u64()
        ),
        (Some("forbidden"), Some(403))
    );
    let wrong_permission = app
        .verify(json!({"key": secret, "permissions": ["results:write"]}))
        .await;
    assert_eq!(wrong_permission["code"], "forbidden");
    assert_eq!(wrong_permission["key"]["id"], created["id"]);
}

#[tokio::test]
async fn a_malformed_key_is_rejected_without_a_store_lookup() {
    let app = TestApp::spawn().await;
    let (_, secret) = app.new_key("real").await;
    let mut typo = secret.into_bytes();
    typo[10] = if typo[10] == b'Q' { b'R' } else { b'Q' };
    let typo = String::from_utf8(typo).expect("ascii");

    let before = app.store_lookups();
    for key in [
        typo.as_str(),
        "garbage",
        "kg_live_short",
        "looks-like-a-legacy-key-but-none-imported",
    ] {
        assert_eq!(app.verify_code(key).await, "malformed_api_key", "{key}");
    }
    assert_eq!(
        app.store_lookups(),
        before,
        "malformed keys must not reach the store"
    );

    // The counter does move for a well-formed unknown key, so the assertion above means something.
    let invented = keygate_core::PlainKey::generate(
        &keygate_server::default_prefix(),
        &keygate_core::EnvTag::live(),
    );
    assert_eq!(app.verify_code(invented.expose()).await, "invalid_api_key");
    assert_eq!(app.store_lookups(), before + 1);

    let text = app.metrics_text().await;
    assert!(
        text.contains("keygate_verifications_total{outcome=\"malformed_api_key\"} 4"),
        "{text}"
    );
}

#[tokio::test]
async fn a_hot_key_is_served_from_memory() {
    let app = TestApp::spawn().await;
    let (_, secret) = app.new_key("hot").await;
    assert_eq!(app.verify_code(&secret).await, "valid");
    let after_first = app.store_lookups();
    for _ in 0..20 {
        assert_eq!(app.verify_code(&secret).await, "valid");
    }
    assert_eq!(app.store_lookups(), after_first);
}

#[tokio::test]
async fn verify_needs_a_management_token_of_the_keys_workspace() {
    let app = TestApp::spawn().await;
    let (_, secret) = app.new_key("mine").await;
    let no_token = app
        .client
        .post(format!("{}/v1/keys/verify", app.base))
        .json(&json!({"key": secret}))
        .send()
        .await
        .expect("send");
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let (_, other_token) = app.second_workspace().await;
    let reply = app
        .post("/v1/keys/verify", &other_token, json!({"key": secret}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["code"], "invalid_api_key");
    assert_eq!(
        reply.body["key"],
        json!(null),
        "another workspace learns nothing about the key"
    );
}

#[tokio::test]
async fn last_used_is_recorded_off_the_request_path() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.new_key("used").await;
    assert_eq!(app.verify_code(&secret).await, "valid");
    app.state.last_used.flush().await;
    let shown = app.owner_get(&format!("/v1/keys/{id}")).await;
    assert!(shown.body["last_used_at"].is_string(), "{}", shown.body);
}
