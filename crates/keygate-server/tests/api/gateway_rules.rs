//! `/v1/routing-rules`: CRUD with roles, workspace isolation and audit; assigning a rule to a
//! key; the workspace default; deleting a rule in use.

use keygate_store::{AuditFilter, PageRequest};
use reqwest::StatusCode;
use serde_json::json;

use crate::gateway_ai::{ai_app, chat, AiSetup};

fn hello() -> serde_json::Value {
    json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
}

#[tokio::test]
async fn routing_rules_are_managed_by_writers_read_by_viewers_and_audited() {
    let AiSetup { app, .. } = ai_app().await;
    let body = json!({"name": "primary", "description": "alpha first", "mode": "fallback",
        "targets": [{"provider": "alpha", "models": {"gpt-test": "gpt-alpha"}}, {"provider": "beta"}]});
    let created = app.owner_create("/v1/routing-rules", body.clone()).await;
    let id = created["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("rr_"));
    assert_eq!(created["default"], false);
    assert_eq!(created["targets"][0]["models"]["gpt-test"], "gpt-alpha");

    let viewer = app.member_token("viewer").await;
    let editor = app.member_token("editor").await;
    let list = app.get("/v1/routing-rules", &viewer).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.get(&format!("/v1/routing-rules/{id}"), &viewer)
            .await
            .body["name"],
        "primary"
    );
    app.post(
        "/v1/routing-rules",
        &viewer,
        json!({"name": "v", "mode": "fallback", "targets": [{"provider": "alpha"}]}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "insufficient_role");
    app.delete(&format!("/v1/routing-rules/{id}"), &viewer)
        .await
        .assert_error(StatusCode::FORBIDDEN, "insufficient_role");

    let patched = app
        .patch(&format!("/v1/routing-rules/{id}"), &editor, json!({"mode": "split", "targets": [{"provider": "alpha", "weight": 7}, {"provider": "beta", "weight": 3}], "description": null}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["mode"], "split");
    assert_eq!(patched.body["description"], serde_json::Value::Null);
    assert_eq!(patched.body["version"], 2);

    // Bad targets are refused with a message that names the problem.
    for bad in [
        json!({"name": "x", "mode": "fallback", "targets": []}),
        json!({"name": "x", "mode": "fallback", "targets": [{"provider": "nobody"}]}),
        json!({"name": "x", "mode": "split", "targets": [{"provider": "alpha", "weight": 0}]}),
        json!({"name": "x", "mode": "fallback", "targets": [{"provider": "alpha", "weight": 0}]}),
        json!({"name": "x", "mode": "sideways", "targets": [{"provider": "alpha"}]}),
    ] {
        let reply = app.owner_post("/v1/routing-rules", bad.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.body
        );
    }
    let dup = app.owner_post("/v1/routing-rules", body).await;
    dup.assert_error(StatusCode::CONFLICT, "name_taken");

    // Another workspace sees none of it.
    let (_, other_token) = app.second_workspace().await;
    app.get(&format!("/v1/routing-rules/{id}"), &other_token)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.get("/v1/routing-rules", &other_token).await.body["items"],
        json!([])
    );
    app.delete(&format!("/v1/routing-rules/{id}"), &other_token)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    let deleted = app
        .delete(&format!("/v1/routing-rules/{id}"), &editor)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.owner_get(&format!("/v1/routing-rules/{id}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    let trail = app
        .state
        .store
        .list_audit(
            &app.workspace_id,
            &AuditFilter {
                target_id: Some(id.clone()),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .expect("audit");
    // The test clock stands still, so entries are compared as a set.
    let mut actions: Vec<&str> = trail.items.iter().map(|e| e.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "routing_rule.create",
            "routing_rule.delete",
            "routing_rule.update"
        ]
    );
    let update = trail
        .items
        .iter()
        .find(|e| e.action == "routing_rule.update")
        .expect("update");
    assert!(update.changes.get("mode").is_some(), "{}", update.changes);
}

#[tokio::test]
async fn keys_route_by_their_rule_then_the_workspace_default_then_the_config() {
    let AiSetup { app, alpha, beta } = ai_app().await;
    let (key_id, secret) = app.new_key("routed").await;
    // No rule anywhere: the first provider serving the model.
    let reply = chat(&app, &secret, hello()).await;
    assert_eq!(reply.headers["keygate-provider"], "alpha");

    let default = app
        .owner_post("/v1/routing-rules", json!({"name": "beta by default", "mode": "fallback", "default": true, "targets": [{"provider": "beta", "models": {"gpt-test": "beta-special"}}]}))
        .await;
    let default_id = default.body["id"].as_str().expect("id").to_string();
    let reply = chat(&app, &secret, hello()).await;
    assert_eq!(reply.headers["keygate-provider"], "beta", "{}", reply.body);
    assert_eq!(beta.last_body()["model"], "beta-special");

    let own = app
        .owner_post("/v1/routing-rules", json!({"name": "alpha for this key", "mode": "fallback", "targets": [{"provider": "alpha"}]}))
        .await;
    let own_id = own.body["id"].as_str().expect("id").to_string();
    let patched = app
        .owner_patch(
            &format!("/v1/keys/{key_id}"),
            json!({"routing_rule_id": own_id}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["routing_rule_id"], own_id.as_str());
    let hits = alpha.hits();
    let reply = chat(&app, &secret, hello()).await;
    assert_eq!(reply.headers["keygate-provider"], "alpha");
    assert_eq!(alpha.hits(), hits + 1);

    // A rule of another workspace, or none at all, cannot be assigned.
    let (_, other_token) = app.second_workspace().await;
    let foreign = app
        .post(
            "/v1/routing-rules",
            &other_token,
            json!({"name": "theirs", "mode": "fallback", "targets": [{"provider": "alpha"}]}),
        )
        .await;
    for bad in [foreign.body["id"].clone(), json!("rr_doesnotexist")] {
        app.owner_patch(
            &format!("/v1/keys/{key_id}"),
            json!({"routing_rule_id": bad}),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "unknown_reference");
    }

    // Deleting the key's rule sends it back to the workspace default.
    let deleted = app
        .owner_delete(&format!("/v1/routing-rules/{own_id}"))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let key = app.owner_get(&format!("/v1/keys/{key_id}")).await;
    assert_eq!(key.body["routing_rule_id"], serde_json::Value::Null);
    let reply = chat(&app, &secret, hello()).await;
    assert_eq!(reply.headers["keygate-provider"], "beta");

    // Clearing the default flag routes by config again; `null` clears a key's rule.
    let cleared = app
        .owner_patch(
            &format!("/v1/routing-rules/{default_id}"),
            json!({"default": false}),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    let reply = chat(&app, &secret, hello()).await;
    assert_eq!(reply.headers["keygate-provider"], "alpha");
    let reply = app
        .owner_patch(
            &format!("/v1/keys/{key_id}"),
            json!({"routing_rule_id": null}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}
