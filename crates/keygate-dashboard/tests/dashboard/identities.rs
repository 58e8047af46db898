//! The identities page: a viewer reads the workspace's identities and their shared limits,
//! finds one by external id, follows it to its keys; another workspace's never show.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::DashApp;

#[tokio::test]
async fn identities_are_listed_with_their_limits_and_lead_to_their_keys() {
    let app = DashApp::spawn().await;
    let (status, identity) = app
        .api(
            Method::POST,
            "/v1/identities",
            &app.owner_token,
            Some(json!({"external_id": "cus_<b>acme</b>", "name": "Acme",
                        "limits": {"rate_limits": [{"limit": 600, "window": "1m"}]}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{identity}");
    let identity_id = identity["id"].as_str().expect("id").to_owned();
    let (status, key) = app
        .api(
            Method::POST,
            "/v1/keys",
            &app.owner_token,
            Some(json!({"name": "acme ci", "identity_id": identity_id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    app.api_key("not acme's").await;
    let other = keygate_server::bootstrap::create_workspace(
        app.state.store.as_ref(),
        &app.state.secret,
        app.state.clock.as_ref(),
        "other",
        keygate_server::default_prefix(),
    )
    .await
    .expect("second workspace");
    let (status, _) = app
        .api(
            Method::POST,
            "/v1/identities",
            other.token.expose(),
            Some(json!({"external_id": "cus_theirs"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, viewer) = app.member("viewer").await;
    let session = app.sign_in(&viewer).await;
    let page = app.get("/dashboard/identities", Some(&session)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("600/min"), "{}", page.body);
    assert!(
        page.body.contains("cus_&lt;b&gt;acme&lt;/b&gt;"),
        "the external id is escaped: {}",
        page.body
    );
    assert!(!page.body.contains("cus_theirs"));
    assert!(page
        .body
        .contains(&format!("/dashboard/keys?identity={identity_id}")));

    let found = app
        .get(
            "/dashboard/identities?external_id=cus_theirs",
            Some(&session),
        )
        .await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(found.body.contains("No identity has this external ID."));

    let keys = app
        .get(
            &format!("/dashboard/keys?identity={identity_id}"),
            Some(&session),
        )
        .await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.body);
    assert!(keys.body.contains("acme ci"), "{}", keys.body);
    assert!(!keys.body.contains("not acme"), "{}", keys.body);

    let anonymous = app.get("/dashboard/identities", None).await;
    assert_eq!(
        anonymous.status,
        StatusCode::SEE_OTHER,
        "{}",
        anonymous.body
    );
}
