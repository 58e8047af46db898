//! The API keys pages: create with the secret shown once, list, filters, toggles, revoke,
//! and the domain's refusals shown on the form.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{attribute_after, DashApp};

#[tokio::test]
async fn a_created_key_shows_its_secret_once_and_is_audited_as_the_member() {
    let app = DashApp::spawn().await;
    let session = app.owner().await;
    let form = app.get("/dashboard/keys/new", Some(&session)).await;
    assert!(form.body.contains("<label for=\"name\">"));
    let created = app
        .post(
            "/dashboard/keys",
            Some(&session),
            &[
                ("csrf", &session.csrf),
                ("name", "billing <prod>"),
                ("description", "for the billing service"),
                ("environment", "test"),
                ("expires", "30d"),
                ("permissions", "results:read, results:write"),
                ("requests_per_minute", "60"),
                ("daily_spend_cap", "5"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.header("cache-control"), "no-store");
    // Escaped, never markup.
    assert!(created.body.contains("billing &lt;prod&gt;"));
    let secret = attribute_after(
        &created.body,
        "id=\"secret\" type=\"text\" readonly value=\"",
    )
    .expect("the secret on the page");
    assert!(secret.starts_with("kg_test_"), "{secret}");
    assert!(created.body.contains("shown once"));

    // The secret works: the same key the API would have made.
    let (status, verdict) = app
        .api(
            reqwest::Method::POST,
            "/v1/keys/verify",
            &app.owner_token,
            Some(json!({"key": secret})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict["valid"], true, "{verdict}");

    // Never again: not in the list, not on the key's page.
    let id = attribute_after(&created.body, "href=\"/dashboard/keys/").expect("link to the key");
    let list = app.get("/dashboard/keys", Some(&session)).await;
    assert!(list.body.contains("billing &lt;prod&gt;"));
    assert!(list.body.contains("60/min"), "limits summary");
    assert!(
        list.body.contains("expires in")
            || list.body.contains("in 30 days")
            || list.body.contains("in 1 month")
    );
    assert!(!list.body.contains(&secret));
    let detail = app
        .get(&format!("/dashboard/keys/{id}"), Some(&session))
        .await;
    assert!(detail.body.contains("results:read, results:write"));
    assert!(!detail.body.contains(&secret));

    let audit = app.audit().await;
    let create = audit
        .iter()
        .find(|e| e["action"] == "key.create")
        .expect("audited");
    assert_eq!(create["actor"], app.owner_id.as_str());
    assert_eq!(create["target_id"], id.as_str());
    assert!(!create.to_string().contains(&secret));
}

#[tokio::test]
async fn the_domains_refusals_are_shown_on_the_form_as_typed() {
    let app = DashApp::spawn().await;
    let session = app.owner().await;
    app.api_key("taken").await;
    let duplicate = app
        .post(
            "/dashboard/keys",
            Some(&session),
            &[
                ("csrf", &session.csrf),
                ("name", "taken"),
                ("description", "kept as typed"),
            ],
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert!(
        duplicate.body.contains("already used"),
        "{}",
        duplicate.body
    );
    assert!(duplicate.body.contains("kept as typed"));
    let blank = app
        .post(
            "/dashboard/keys",
            Some(&session),
            &[("csrf", &session.csrf), ("name", "  ")],
        )
        .await;
    assert!(blank.status.is_client_error(), "{}", blank.status);
    assert!(blank.body.contains("role=\"alert\""));
    let rpm = app
        .post(
            "/dashboard/keys",
            Some(&session),
            &[
                ("csrf", &session.csrf),
                ("name", "fast"),
                ("requests_per_minute", "0"),
            ],
        )
        .await;
    assert!(rpm.status.is_client_error());
    assert!(rpm.body.contains("at least 1"), "{}", rpm.body);
    let past = app
        .post(
            "/dashboard/keys",
            Some(&session),
            &[
                ("csrf", &session.csrf),
                ("name", "old"),
                ("expires", "date"),
                ("expires_on", "2001-01-01"),
            ],
        )
        .await;
    assert!(past.status.is_client_error());
    // One active key per environment, when the workspace says so.
    let (status, _) = app
        .api(
            reqwest::Method::PATCH,
            "/v1/workspace",
            &app.owner_token,
            Some(json!({"single_active_key": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = app
        .post(
            "/dashboard/keys",
            Some(&session),
            &[("csrf", &session.csrf), ("name", "second")],
        )
        .await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert!(second.body.contains("one active key"), "{}", second.body);
    assert_eq!(app.key_count().await, 1);
}

#[tokio::test]
async fn disable_and_enable_from_the_list_and_revoke_after_confirming() {
    let app = DashApp::spawn().await;
    let session = app.owner().await;
    let id = app.api_key("toggled").await;
    let disabled = app
        .post(
            &format!("/dashboard/keys/{id}/disable"),
            Some(&session),
            &[("csrf", &session.csrf), ("back", "list")],
        )
        .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER);
    assert_eq!(disabled.location(), "/dashboard/keys?done=disabled");
    assert_eq!(app.key(&id).await["status"], "disabled");
    let list = app.get(disabled.location(), Some(&session)).await;
    assert!(list.body.contains("The key is disabled"));
    // A made-up flash shows nothing rather than refusing the page.
    let odd = app
        .get("/dashboard/keys?done=exploded", Some(&session))
        .await;
    assert_eq!(odd.status, StatusCode::OK);
    assert!(!odd.body.contains("role=\"status\""));
    assert!(list.body.contains(&format!("/dashboard/keys/{id}/enable")));
    let enabled = app
        .post(
            &format!("/dashboard/keys/{id}/enable"),
            Some(&session),
            &[("csrf", &session.csrf), ("back", "detail")],
        )
        .await;
    assert_eq!(
        enabled.location(),
        format!("/dashboard/keys/{id}?done=enabled")
    );
    assert_eq!(app.key(&id).await["status"], "active");

    // Without the confirmation step's field, a revoke asks first.
    let unconfirmed = app
        .post(
            &format!("/dashboard/keys/{id}/revoke"),
            Some(&session),
            &[("csrf", &session.csrf)],
        )
        .await;
    assert_eq!(
        unconfirmed.location(),
        format!("/dashboard/keys/{id}/revoke")
    );
    assert_eq!(app.key(&id).await["status"], "active");
    let confirm = app
        .get(&format!("/dashboard/keys/{id}/revoke"), Some(&session))
        .await;
    assert!(confirm.body.contains("cannot be undone"));
    let revoked = app
        .post(
            &format!("/dashboard/keys/{id}/revoke"),
            Some(&session),
            &[("csrf", &session.csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(app.key(&id).await["status"], "revoked");
    // A revoked key cannot be enabled: the domain's refusal, as a page, not a 500.
    let enable = app
        .post(
            &format!("/dashboard/keys/{id}/enable"),
            Some(&session),
            &[("csrf", &session.csrf)],
        )
        .await;
    assert_eq!(enable.status, StatusCode::CONFLICT);
    let actions: Vec<String> = app
        .audit()
        .await
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect();
    for action in ["key.disable", "key.enable", "key.revoke"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

#[tokio::test]
async fn the_list_searches_filters_and_pages() {
    let app = DashApp::spawn().await;
    let session = app.owner().await;
    for i in 0..30 {
        app.api_key(&format!("service {i:02}")).await;
    }
    let other = app.api_key("the odd one").await;
    let (status, _) = app
        .api(
            reqwest::Method::POST,
            &format!("/v1/keys/{other}/disable"),
            &app.owner_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let first = app.get("/dashboard/keys", Some(&session)).await;
    assert_eq!(first.body.matches("data-key-id=").count(), 25);
    let next =
        attribute_after(&first.body, "<a href=\"/dashboard/keys?cursor=").expect("next page link");
    let second = app
        .get(&format!("/dashboard/keys?cursor={next}"), Some(&session))
        .await;
    assert_eq!(second.body.matches("data-key-id=").count(), 6);
    assert!(second.body.contains("First page"));

    let searched = app.get("/dashboard/keys?search=odd", Some(&session)).await;
    assert_eq!(searched.body.matches("data-key-id=").count(), 1);
    let disabled = app
        .get("/dashboard/keys?status=disabled", Some(&session))
        .await;
    assert_eq!(disabled.body.matches("data-key-id=").count(), 1);
    assert!(disabled.body.contains("the odd one"));
    let test_env = app
        .get("/dashboard/keys?environment=test", Some(&session))
        .await;
    assert!(test_env.body.contains("No key matches"));
    let bad = app
        .get("/dashboard/keys?status=sleeping", Some(&session))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
