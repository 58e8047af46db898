//! Every lifecycle operation over HTTP, and durability across a restart.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Spawn, TestApp};

#[tokio::test]
async fn create_shows_the_secret_once_and_stores_every_field() {
    let app = TestApp::spawn().await;
    let project = app
        .owner_post("/v1/projects", json!({"name": "billing"}))
        .await;
    assert_eq!(project.status, StatusCode::CREATED);
    let project_id = project.body["id"].as_str().expect("id");

    let created = app
        .create_key(json!({
            "name": "ci deploy",
            "description": "used by the deploy job",
            "environment": "test",
            "scope": [project_id],
            "permissions": ["results:read", "scenarios:write"],
            "expires_in": "30d",
            "metadata": {"team": "platform"},
        }))
        .await;
    let secret = created["secret"].as_str().expect("secret");
    assert!(secret.starts_with("kg_test_"));
    assert!(created["warning"]
        .as_str()
        .expect("warning")
        .contains("once"));
    let id = created["id"].as_str().expect("id");

    let shown = app.owner_get(&format!("/v1/keys/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    let key = &shown.body;
    assert!(
        key.get("secret").is_none(),
        "GET must never show the secret"
    );
    assert!(!key.to_string().contains(secret));
    assert_eq!(key["name"], "ci deploy");
    assert_eq!(key["description"], "used by the deploy job");
    assert_eq!(key["environment"], "test");
    assert_eq!(key["scope"], json!([project_id]));
    assert_eq!(
        key["permissions"],
        json!(["results:read", "scenarios:write"])
    );
    assert_eq!(key["status"], "active");
    assert_eq!(key["metadata"], json!({"team": "platform"}));
    assert!(key["expires_at"].is_string());
    assert!(key["created_at"].is_string());
    assert!(key["created_by"]
        .as_str()
        .expect("created_by")
        .starts_with("mem_"));
    assert_eq!(key["last_used_at"], json!(null));
    let display = key["display"].as_str().expect("display");
    assert!(display.starts_with("kg_test_") && display.contains('…'));
}

#[tokio::test]
async fn names_are_unique_per_workspace() {
    let app = TestApp::spawn().await;
    app.new_key("same").await;
    let again = app.owner_post("/v1/keys", json!({"name": "same"})).await;
    again.assert_error(StatusCode::CONFLICT, "name_taken");
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.create_key(json!({"name": format!("live {i}")})).await;
    }
    let (test_id, _) = {
        let c = app
            .create_key(json!({"name": "test one", "environment": "test"}))
            .await;
        (c["id"].as_str().expect("id").to_owned(), ())
    };
    app.key_action(&test_id, "disable").await;

    let all = app.owner_get("/v1/keys").await;
    assert_eq!(all.body["items"].as_array().expect("items").len(), 6);

    let test_only = app.owner_get("/v1/keys?environment=test").await;
    assert_eq!(test_only.body["items"].as_array().expect("items").len(), 1);
    let disabled = app.owner_get("/v1/keys?status=disabled").await;
    assert_eq!(disabled.body["items"][0]["id"], test_id.as_str());
    let searched = app.owner_get("/v1/keys?search=LIVE%203").await;
    assert_eq!(searched.body["items"].as_array().expect("items").len(), 1);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/keys?limit=2&cursor={c}"),
            None => "/v1/keys?limit=2".to_string(),
        };
        let page = app.owner_get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for item in page.body["items"].as_array().expect("items") {
            seen.push(item["id"].as_str().expect("id").to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "pagination must visit every key once");
    assert_eq!(seen.len(), 6);

    app.owner_get("/v1/keys?status=bogus")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    app.owner_get("/v1/keys?limit=0")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn update_changes_fields_and_validates_them() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.new_key("before").await;
    let path = format!("/v1/keys/{id}");
    let updated = app
        .owner_patch(
            &path,
            json!({
                "name": "after",
                "permissions": ["a:b"],
                "expires_at": "2099-01-01T00:00:00Z",
                "metadata": {"x": 1},
                "limits": {"rate_limits": [{"limit": 10, "window": "1m"}]}
            }),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["name"], "after");
    assert_eq!(updated.body["permissions"], json!(["a:b"]));
    assert_eq!(updated.body["limits"]["rate_limits"][0]["limit"], 10);
    let shown = app.owner_get(&path).await;
    assert_eq!(shown.body["name"], "after");
    assert_eq!(app.verify_code(&secret).await, "valid");

    let cleared = app.owner_patch(&path, json!({"expires_at": null})).await;
    assert_eq!(cleared.body["expires_at"], json!(null));

    app.owner_patch(&path, json!({"expires_in": "soon"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    app.owner_patch(&path, json!({"nmae": "typo"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    app.owner_patch(&path, json!({"scope": ["proj_nope"]}))
        .await
        .assert_error(StatusCode::CONFLICT, "unknown_reference");
}

#[tokio::test]
async fn disable_enable_revoke_take_effect_on_the_next_request() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.new_key("toggle").await;
    assert_eq!(app.verify_code(&secret).await, "valid");

    let disabled = app.key_action(&id, "disable").await;
    assert_eq!(disabled.body["status"], "disabled");
    assert_eq!(app.verify_code(&secret).await, "disabled");

    app.key_action(&id, "enable").await;
    assert_eq!(app.verify_code(&secret).await, "valid");

    let revoked = app.key_action(&id, "revoke").await;
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(app.verify_code(&secret).await, "revoked");

    app.key_action(&id, "enable")
        .await
        .assert_error(StatusCode::CONFLICT, "key_revoked");
    app.key_action(&id, "regenerate")
        .await
        .assert_error(StatusCode::CONFLICT, "key_revoked");
    assert_eq!(app.verify_code(&secret).await, "revoked");
}

#[tokio::test]
async fn regenerate_kills_the_old_secret_at_once() {
    let app = TestApp::spawn().await;
    let (id, old) = app.new_key("regen").await;
    assert_eq!(app.verify_code(&old).await, "valid");
    let regenerated = app.key_action(&id, "regenerate").await;
    assert_eq!(regenerated.status, StatusCode::OK, "{}", regenerated.body);
    let new = regenerated.body["secret"].as_str().expect("secret");
    assert_ne!(new, old);
    assert_eq!(regenerated.body["id"], id.as_str());
    assert_eq!(app.verify_code(&old).await, "invalid_api_key");
    assert_eq!(app.verify_code(new).await, "valid");
}

#[tokio::test]
async fn delete_is_permanent() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.new_key("doomed").await;
    assert_eq!(app.verify_code(&secret).await, "valid");
    let deleted = app.owner_delete(&format!("/v1/keys/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.owner_get(&format!("/v1/keys/{id}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.verify_code(&secret).await, "invalid_api_key");
    app.owner_delete(&format!("/v1/keys/{id}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn imported_legacy_keys_authenticate_by_plain_or_sha256() {
    let app = TestApp::spawn().await;
    let plain = "sk-legacy-0123456789abcdef";
    let imported = app
        .owner_create(
            "/v1/keys/import",
            json!({"name": "old system", "key": plain}),
        )
        .await;
    assert_eq!(imported["legacy"], true);
    assert!(!imported.to_string().contains(plain));
    let verified = app.verify(json!({"key": plain})).await;
    assert_eq!(verified["code"], "valid");
    assert_eq!(verified["key"]["legacy"], true);
    assert_eq!(verified["limits"], json!([]));

    // Known only by its SHA-256 (of "another-legacy-key-42").
    let other = "another-legacy-key-42";
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(other.as_bytes()));
    app.owner_create("/v1/keys/import", json!({"name": "hashed", "sha256": sha}))
        .await;
    assert_eq!(app.verify_code(other).await, "valid");

    // Legacy keys carry no limits.
    let id = imported["id"].as_str().expect("id");
    app.owner_patch(
        &format!("/v1/keys/{id}"),
        json!({"limits": {"rate_limits": [{"limit": 1, "window": "1m"}]}}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "legacy_key");

    // Revoking a legacy key works like any other.
    app.key_action(id, "revoke").await;
    assert_eq!(app.verify_code(plain).await, "revoked");

    app.owner_post(
        "/v1/keys/import",
        json!({"name": "both", "key": "x-legacy-0123456789", "sha256": sha}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn one_active_key_at_a_time_when_the_workspace_asks_for_it() {
    let app = TestApp::spawn().await;
    app.patch_workspace(json!({"single_active_key": true}))
        .await;
    let (first, _) = app.new_key("first").await;
    app.owner_post("/v1/keys", json!({"name": "second"}))
        .await
        .assert_error(StatusCode::CONFLICT, "one_active_key");
    // Another environment has its own slot.
    app.create_key(json!({"name": "test env", "environment": "test"}))
        .await;
    app.key_action(&first, "revoke").await;
    app.new_key("second").await;
}

both_backends!(the_one_active_key_policy_names_the_keys_in_the_way_in_both_orders);

/// Both orders of "two active keys" and "the policy on": turning the policy on while an
/// environment has two active keys is refused naming both (nothing changes); once one is
/// gone it is accepted, and from then on a second key is refused naming the active one —
/// whose rotation is the way to a new secret. Keys of the old, unslotted kind count too.
async fn the_one_active_key_policy_names_the_keys_in_the_way_in_both_orders(app: &TestApp) {
    let (a, _) = app.new_key("alpha").await;
    let (b, _) = app.new_key("beta").await;
    app.create_key(json!({"name": "elsewhere", "environment": "test"}))
        .await;
    let refused = app
        .owner_patch("/v1/workspace", json!({"single_active_key": true}))
        .await;
    refused.assert_error(StatusCode::CONFLICT, "one_active_key");
    let message = refused.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains(&a) && message.contains(&b) && message.contains("live"),
        "{message}"
    );
    let workspace = app.owner_get("/v1/workspace").await;
    assert_eq!(
        workspace.body["single_active_key"], false,
        "nothing changed"
    );

    app.key_action(&b, "disable").await;
    app.patch_workspace(json!({"single_active_key": true}))
        .await;
    let second = app.owner_post("/v1/keys", json!({"name": "gamma"})).await;
    second.assert_error(StatusCode::CONFLICT, "one_active_key");
    let message = second.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&a) && message.contains("rotate"),
        "{message}"
    );
    // Enabling the disabled one would make two: refused too.
    app.key_action(&b, "enable")
        .await
        .assert_error(StatusCode::CONFLICT, "one_active_key");
    // Rotating the active key is the way to a new secret under the policy.
    let rotated = app
        .owner_post(&format!("/v1/keys/{a}/rotate"), json!({"grace": "1h"}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);

    // Off again: the slots are freed, and two active keys are fine.
    app.patch_workspace(json!({"single_active_key": false}))
        .await;
    app.key_action(&b, "enable").await;
    app.new_key("delta").await;
}

#[tokio::test]
async fn revoked_stays_revoked_after_a_restart_on_the_same_file() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.new_key("durable").await;
    let (_, kept) = app.new_key("kept").await;
    app.key_action(&id, "revoke").await;
    let token = app.owner_token.clone();
    let url = app.database_url.clone();
    let dir = app.stop().await;

    let again = TestApp::spawn_with(Spawn {
        dir: Some(dir),
        database_url: Some(url),
        ..Spawn::default()
    })
    .await;
    assert!(
        again.owner_token.is_empty(),
        "no second bootstrap on a used store"
    );
    let reply = again
        .post("/v1/keys/verify", &token, json!({"key": secret}))
        .await;
    assert_eq!(reply.body["code"], "revoked", "{}", reply.body);
    let reply = again
        .post("/v1/keys/verify", &token, json!({"key": kept}))
        .await;
    assert_eq!(reply.body["code"], "valid", "{}", reply.body);
}
