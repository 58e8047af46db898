//! Regression tests for issue #15 (security_auth). Run all with `cargo test -p keygate-server --test api security`.
//! Items 4 (authentication before idempotent replay) and 5 (a role for every route).

use keygate_core::access::Access;
use keygate_server::routes::access_table;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Reply, TestApp};

async fn member_id(app: &TestApp, name: &str) -> String {
    let members = app.owner_get("/v1/members").await;
    members.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["id"].as_str())
        .expect("member")
        .to_owned()
}

#[tokio::test]
async fn security_a_deleted_members_token_cannot_replay_an_idempotent_create() {
    let app = TestApp::spawn().await;
    let editor = app.member_token("editor").await;
    let body = json!({"name": "made by the editor"});
    let first = app
        .post_idempotent("/v1/keys", &editor, "abc123", body.clone())
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let secret = first.body["secret"].as_str().expect("secret").to_owned();

    let id = member_id(&app, "editor member").await;
    let removed = app.owner_delete(&format!("/v1/members/{id}")).await;
    assert!(removed.status.is_success(), "{}", removed.body);

    let replay = app
        .post_idempotent("/v1/keys", &editor, "abc123", body)
        .await;
    replay.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(
        !replay.body.to_string().contains(&secret),
        "the secret must not be replayed to a deleted member"
    );
}

#[tokio::test]
async fn security_an_idempotent_answer_is_replayed_only_to_the_member_who_made_it() {
    let app = TestApp::spawn().await;
    let editor = app.member_token("editor").await;
    let body = json!({"name": "mine"});
    let first = app
        .owner_post_idempotent("/v1/keys", "shared-key", body.clone())
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let secret = first.body["secret"].as_str().expect("secret").to_owned();
    // Another member using the same Idempotency-Key gets a request of their own, which the
    // unique name turns into a conflict: never the owner's answer.
    let other = app
        .post_idempotent("/v1/keys", &editor, "shared-key", body)
        .await;
    assert_ne!(other.status, StatusCode::CREATED, "{}", other.body);
    assert!(!other.body.to_string().contains(&secret));
}

#[tokio::test]
async fn security_unauthenticated_posts_are_refused_before_the_body_or_idempotency() {
    let app = TestApp::spawn().await;
    for token in [
        "",
        "kgm_mgmt_not-a-real-token",
        "kgm_mgmt_0000000000000000000000000000000",
    ] {
        let mut request = app
            .client
            .post(format!("{}/v1/keys", app.base))
            .header("Idempotency-Key", "unauth-1")
            .header("content-type", "application/json")
            .body("{this is not json");
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        let reply = Reply::send(request).await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
}

#[tokio::test]
async fn security_viewers_cannot_consume_or_report_spend() {
    let app = TestApp::spawn().await;
    let viewer = app.member_token("viewer").await;
    let created = app
        .create_key(
            json!({"name": "limited", "limits": {"rate_limits": [{"limit": 2, "window": "1m"}]}}),
        )
        .await;
    let (id, secret) = (
        created["id"].as_str().expect("id"),
        created["secret"].as_str().expect("secret"),
    );
    for (path, body) in [
        ("/v1/keys/verify", json!({"key": secret})),
        ("/v1/reservations", json!({"key": secret, "cost": "1"})),
        ("/v1/reservations/rsv_x.y/settle", json!({"cost": "500"})),
        ("/v1/reservations/rsv_x.y/release", json!({})),
        ("/v1/usage", json!({"key_id": id, "cost": "500"})),
    ] {
        let reply = app.post(path, &viewer, body).await;
        reply.assert_error(StatusCode::FORBIDDEN, "insufficient_role");
    }
    // Nothing was consumed: the key still has both of its two requests.
    assert_eq!(app.verify_code(secret).await, "valid");
    assert_eq!(app.verify_code(secret).await, "valid");
    assert_eq!(app.verify_code(secret).await, "rate_limited");
}

#[tokio::test]
async fn security_a_service_member_meters_but_cannot_read_or_manage_keys() {
    let app = TestApp::spawn().await;
    let service = app.member_token("service").await;
    let (id, secret) = app.new_key("metered").await;
    let verified = app
        .post("/v1/keys/verify", &service, json!({"key": secret}))
        .await;
    assert_eq!(verified.body["code"], "valid", "{}", verified.body);
    let reserved = app
        .post(
            "/v1/reservations",
            &service,
            json!({"key": secret, "cost": "1"}),
        )
        .await;
    assert_eq!(reserved.status, StatusCode::OK, "{}", reserved.body);
    let reported = app
        .post("/v1/usage", &service, json!({"key_id": id, "tokens": 3}))
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.body);
    let me = app.get("/v1/me", &service).await;
    assert_eq!(me.body["member"]["role"], "service");
    for reply in [
        app.get("/v1/keys", &service).await,
        app.get(&format!("/v1/keys/{id}"), &service).await,
        app.post("/v1/keys", &service, json!({"name": "nope"}))
            .await,
        app.post(&format!("/v1/keys/{id}/revoke"), &service, json!({}))
            .await,
        app.get("/v1/members", &service).await,
    ] {
        reply.assert_error(StatusCode::FORBIDDEN, "insufficient_role");
    }
}

/// Every row of the access table is a served route that authenticates first (401 without a
/// token, before looking at a malformed body) and refuses every role the row does not admit
/// (403, again before the body).
#[tokio::test]
async fn security_every_route_in_the_access_table_is_served_and_enforced() {
    let app = TestApp::spawn().await;
    let tokens = [
        (
            keygate_core::model::Role::Editor,
            app.member_token("editor").await,
        ),
        (
            keygate_core::model::Role::Viewer,
            app.member_token("viewer").await,
        ),
        (
            keygate_core::model::Role::Service,
            app.member_token("service").await,
        ),
    ];
    for op in access_table() {
        let path = op
            .path
            .replace("{id}", "key_does_not_exist")
            .replace("{request_id}", "req_does_not_exist");
        let method = op.verb.method();
        let send = |token: Option<&str>| {
            let mut request = app
                .client
                .request(method.clone(), format!("{}{path}", app.base))
                .header("content-type", "application/json")
                .body("{not json");
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let anonymous = Reply::from(send(None).await.expect("send")).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            anonymous.body
        );
        for (role, token) in &tokens {
            let reply = Reply::from(send(Some(token)).await.expect("send")).await;
            if op.access.allows(*role) {
                assert_ne!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{role} {method} {path}: {}",
                    reply.body
                );
            } else {
                reply.assert_error(StatusCode::FORBIDDEN, "insufficient_role");
            }
        }
    }
    // The table's levels are the documented ones.
    let meter: Vec<_> = access_table()
        .into_iter()
        .filter(|op| op.access == Access::Meter)
        .map(|op| op.path)
        .collect();
    assert_eq!(
        meter,
        [
            "/v1/keys/verify",
            "/v1/usage",
            "/v1/reservations",
            "/v1/reservations/{id}/settle",
            "/v1/reservations/{id}/release"
        ]
    );
}

/// The README's role table is the code's: a row changed in one and not the other fails here.
#[test]
fn security_the_readme_role_table_matches_the_code() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let documented = readme
        .lines()
        .filter(|line| line.starts_with("| `") && line.contains(" /v1/"))
        .filter(|line| {
            line.ends_with("service |")
                || line.ends_with("reporter |")
                || line.ends_with("viewer |")
                || line.ends_with("editor |")
                || line.ends_with("owner |")
        })
        .count();
    let table = access_table();
    for op in &table {
        let verb = op.verb.method();
        let roles: Vec<&str> = op.access.roles().into_iter().map(|r| r.as_str()).collect();
        let row = format!("| `{verb} {}` | {} |", op.path, roles.join(", "));
        assert!(readme.contains(&row), "README.md lacks the row {row}");
    }
    assert_eq!(
        documented,
        table.len(),
        "README.md has rows the code does not"
    );
}
