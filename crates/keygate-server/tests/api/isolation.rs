//! A token never sees another workspace: its ids answer 404, its keys do not verify.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn another_workspaces_ids_answer_404() {
    let app = TestApp::spawn().await;
    let (theirs, their_secret) = app.new_key("theirs").await;
    let project = app.owner_post("/v1/projects", json!({"name": "p"})).await;
    let project_id = project.body["id"].as_str().expect("id").to_owned();
    let member = app
        .owner_post("/v1/members", json!({"name": "m", "role": "viewer"}))
        .await;
    let member_id = member.body["id"].as_str().expect("id").to_owned();

    let (_, intruder) = app.second_workspace().await;
    let key_path = format!("/v1/keys/{theirs}");
    app.get(&key_path, &intruder)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.patch(&key_path, &intruder, json!({"name": "mine now"}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    for action in ["disable", "enable", "revoke", "regenerate", "rotate"] {
        app.post(&format!("{key_path}/{action}"), &intruder, json!({}))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    app.delete(&key_path, &intruder)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("/v1/projects/{project_id}"), &intruder)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.delete(&format!("/v1/members/{member_id}"), &intruder)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    // Scoping a key to someone else's project is refused as for a project that does not exist.
    app.post(
        "/v1/keys",
        &intruder,
        json!({"name": "x", "scope": [project_id]}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "unknown_reference");

    let listed = app.get("/v1/keys", &intruder).await;
    assert_eq!(listed.body["items"], json!([]));
    let verify = app
        .post("/v1/keys/verify", &intruder, json!({"key": their_secret}))
        .await;
    assert_eq!(verify.body["code"], "invalid_api_key");

    // And nothing changed for the owner.
    let mine = app.owner_get(&key_path).await;
    assert_eq!(mine.body["name"], "theirs");
    assert_eq!(mine.body["status"], "active");
}
