//! The role × action matrix: owners and editors write keys and verify, viewers only read,
//! only owners manage members. (`security_auth.rs` walks the whole access table.)

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn role_by_action_matrix() {
    let app = TestApp::spawn().await;
    let editor = app.member_token("editor").await;
    let viewer = app.member_token("viewer").await;
    let owner = app.owner_token.clone();

    for (role, token, writes, manages_members) in [
        ("owner", owner.as_str(), true, true),
        ("editor", editor.as_str(), true, false),
        ("viewer", viewer.as_str(), false, false),
    ] {
        let (id, secret) = app.new_key(&format!("target for {role}")).await;
        let expect_write = |reply: crate::helpers::Reply, ok: StatusCode| {
            if writes {
                assert_eq!(reply.status, ok, "{role}: {}", reply.body);
            } else {
                reply.assert_error(StatusCode::FORBIDDEN, "insufficient_role");
            }
        };
        // Reads: everyone.
        let me = app.get("/v1/me", token).await;
        assert_eq!(me.body["member"]["role"], role, "{}", me.body);
        assert_eq!(
            app.get("/v1/keys", token).await.status,
            StatusCode::OK,
            "{role}"
        );
        assert_eq!(
            app.get(&format!("/v1/keys/{id}"), token).await.status,
            StatusCode::OK
        );
        assert_eq!(app.get("/v1/projects", token).await.status, StatusCode::OK);
        // Verifying consumes (rate limits, budgets): writers may, viewers may not.
        let verified = app
            .post("/v1/keys/verify", token, json!({"key": secret}))
            .await;
        if writes {
            assert_eq!(verified.body["code"], "valid", "{role} can verify");
        } else {
            verified.assert_error(StatusCode::FORBIDDEN, "insufficient_role");
        }

        // Writes: owner and editor.
        let created = StatusCode::CREATED;
        let by_role = json!({"name": format!("by {role}")});
        expect_write(app.post("/v1/keys", token, by_role).await, created);
        let key = format!("/v1/keys/{id}");
        let described = json!({"description": "x"});
        expect_write(app.patch(&key, token, described).await, StatusCode::OK);
        for (action, body) in [
            ("disable", json!({})),
            ("enable", json!({})),
            ("rotate", json!({"grace": "1h"})),
            ("regenerate", json!({})),
            ("revoke", json!({})),
        ] {
            let reply = app.post(&format!("{key}/{action}"), token, body).await;
            expect_write(reply, StatusCode::OK);
        }
        expect_write(app.delete(&key, token).await, StatusCode::NO_CONTENT);
        let legacy = json!({"name": format!("legacy {role}"), "key": format!("legacy-key-for-{role}-0123456789")});
        expect_write(app.post("/v1/keys/import", token, legacy).await, created);
        let project = json!({"name": format!("project {role}")});
        expect_write(app.post("/v1/projects", token, project).await, created);

        // Members: owner only, including listing.
        let listed = app.get("/v1/members", token).await;
        let added = app
            .post(
                "/v1/members",
                token,
                json!({"name": "new", "role": "viewer"}),
            )
            .await;
        if manages_members {
            assert_eq!(listed.status, StatusCode::OK);
            assert_eq!(added.status, StatusCode::CREATED);
            let new_id = added.body["id"].as_str().expect("id");
            let removed = app.delete(&format!("/v1/members/{new_id}"), token).await;
            assert_eq!(removed.status, StatusCode::NO_CONTENT);
        } else {
            listed.assert_error(StatusCode::FORBIDDEN, "insufficient_role");
            added.assert_error(StatusCode::FORBIDDEN, "insufficient_role");
        }
    }
}

#[tokio::test]
async fn a_deleted_members_token_stops_working_at_once() {
    let app = TestApp::spawn().await;
    let created = app
        .owner_post("/v1/members", json!({"name": "leaver", "role": "editor"}))
        .await;
    let token = created.body["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("kgm_"));
    assert_eq!(app.get("/v1/keys", &token).await.status, StatusCode::OK);
    let id = created.body["id"].as_str().expect("id");
    app.owner_delete(&format!("/v1/members/{id}")).await;
    app.get("/v1/keys", &token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

/// Nobody removes themselves (their token would stop at once), so the last owner can never be
/// removed: another owner can remove an owner, and that other owner remains.
#[tokio::test]
async fn members_cannot_remove_themselves_so_the_last_owner_stays() {
    let app = TestApp::spawn().await;
    let members = app.owner_get("/v1/members").await;
    let owner_id = members.body["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.owner_delete(&format!("/v1/members/{owner_id}"))
        .await
        .assert_error(StatusCode::CONFLICT, "cannot_remove_self");
    assert_eq!(
        app.get("/v1/keys", &app.owner_token).await.status,
        StatusCode::OK
    );

    let second = app
        .owner_post(
            "/v1/members",
            json!({"name": "second owner", "role": "owner"}),
        )
        .await;
    let second_token = second.body["token"].as_str().expect("token").to_owned();
    let removed = app
        .delete(&format!("/v1/members/{owner_id}"), &second_token)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let second_id = second.body["id"].as_str().expect("id");
    app.delete(&format!("/v1/members/{second_id}"), &second_token)
        .await
        .assert_error(StatusCode::CONFLICT, "cannot_remove_self");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_a_clear_error() {
    let app = TestApp::spawn().await;
    let (_, customer_key) = app.new_key("customer").await;
    for token in ["", "nonsense", customer_key.as_str()] {
        app.get("/v1/keys", token)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let unknown = keygate_server::auth::generate_token();
    app.get("/v1/keys", unknown.expose())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}
