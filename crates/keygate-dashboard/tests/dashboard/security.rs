//! What every page and form has: the security headers, the CSRF token and the same-origin
//! check, and the role and workspace checks of the API.

use reqwest::StatusCode;

use crate::helpers::DashApp;

fn assert_protected(page: &crate::helpers::Page, path: &str) {
    let csp = page.header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'self'; frame-ancestors 'none'"),
        "{path}: {csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    assert_eq!(page.header("referrer-policy"), "no-referrer", "{path}");
    assert_eq!(page.header("x-content-type-options"), "nosniff", "{path}");
    assert_eq!(page.header("cache-control"), "no-store", "{path}");
}

#[tokio::test]
async fn every_dashboard_answer_has_the_security_headers() {
    let app = DashApp::spawn().await;
    let session = app.owner().await;
    let id = app.api_key("headers").await;
    let signed_out = [
        "/",
        "/dashboard",
        "/dashboard/sign-in",
        "/dashboard/static/dashboard.css",
        "/dashboard/static/dashboard.js",
        "/dashboard/no-such-page",
        "/dashboard/keys",
    ];
    for path in signed_out {
        let page = app.get(path, None).await;
        assert_protected(&page, path);
    }
    let link = app.owner_link.clone();
    assert_protected(&app.get(&link, None).await, "the sign-in link");
    let signed_in = [
        "/dashboard/keys".to_owned(),
        "/dashboard/keys?status=disabled&search=x".to_owned(),
        "/dashboard/keys/new".to_owned(),
        format!("/dashboard/keys/{id}"),
        format!("/dashboard/keys/{id}/revoke"),
        "/dashboard/keys/key_doesnotexist".to_owned(),
    ];
    for path in &signed_in {
        let page = app.get(path, Some(&session)).await;
        assert!(
            page.status.is_success() || page.status == StatusCode::NOT_FOUND,
            "{path}: {}",
            page.status
        );
        assert_protected(&page, path);
    }
    // No inline script or style anywhere: the CSP would block it, so none is written.
    let page = app.get("/dashboard/keys/new", Some(&session)).await;
    assert!(!page.body.contains("<script>") && !page.body.contains("style="));
    // A refused POST too.
    let refused = app
        .post("/dashboard/keys", Some(&session), &[("name", "x")])
        .await;
    assert_protected(&refused, "a refused POST");
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_changes_nothing() {
    let app = DashApp::spawn().await;
    let session = app.owner().await;
    let missing = app
        .post("/dashboard/keys", Some(&session), &[("name", "no token")])
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let wrong = app
        .post(
            "/dashboard/keys",
            Some(&session),
            &[("csrf", "0123"), ("name", "wrong token")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // Another session's token is not this one's.
    let other = app.owner().await;
    let borrowed = app
        .post(
            "/dashboard/keys",
            Some(&session),
            &[("csrf", &other.csrf), ("name", "borrowed")],
        )
        .await;
    assert_eq!(borrowed.status, StatusCode::FORBIDDEN);
    let id = app.api_key("kept").await;
    let revoke = app
        .post(
            &format!("/dashboard/keys/{id}/revoke"),
            Some(&session),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(revoke.status, StatusCode::FORBIDDEN);
    assert_eq!(app.key(&id).await["status"], "active");
    assert_eq!(app.key_count().await, 1);
}

#[tokio::test]
async fn a_post_from_another_site_is_refused_even_with_the_token() {
    let app = DashApp::spawn().await;
    let session = app.owner().await;
    let form = [("csrf", session.csrf.as_str()), ("name", "cross site")];
    let origin = app
        .post_with(
            "/dashboard/keys",
            Some(&session),
            &form,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(origin.status, StatusCode::FORBIDDEN);
    let fetch_site = app
        .post_with(
            "/dashboard/keys",
            Some(&session),
            &form,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(fetch_site.status, StatusCode::FORBIDDEN);
    // Login CSRF: signing someone in from another site is refused too.
    let sign_in = app
        .post_with(
            "/dashboard/sign-in",
            None,
            &[("token", &app.owner_token)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(sign_in.status, StatusCode::FORBIDDEN);
    assert_eq!(app.key_count().await, 0);
    // The same form from this origin works.
    let same = app.post("/dashboard/keys", Some(&session), &form).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
}

#[tokio::test]
async fn a_viewer_sees_no_write_controls_and_is_refused_writes() {
    let app = DashApp::spawn().await;
    let id = app.api_key("watched").await;
    let (_, token) = app.member("viewer").await;
    let viewer = app.sign_in(&token).await;
    let list = app.get("/dashboard/keys", Some(&viewer)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("watched"));
    assert!(!list.body.contains("Create API key"));
    assert!(!list.body.contains("/disable\""));
    let detail = app
        .get(&format!("/dashboard/keys/{id}"), Some(&viewer))
        .await;
    assert!(!detail.body.contains("Revoke"));

    let new = app.get("/dashboard/keys/new", Some(&viewer)).await;
    assert_eq!(new.status, StatusCode::FORBIDDEN);
    assert!(
        new.body.contains("viewer role cannot create keys"),
        "{}",
        new.body
    );
    let created = app
        .post(
            "/dashboard/keys",
            Some(&viewer),
            &[("csrf", &viewer.csrf), ("name", "forged")],
        )
        .await;
    assert_eq!(created.status, StatusCode::FORBIDDEN);
    for action in ["disable", "revoke"] {
        let forged = app
            .post(
                &format!("/dashboard/keys/{id}/{action}"),
                Some(&viewer),
                &[("csrf", &viewer.csrf), ("confirm", "yes")],
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{action}");
    }
    assert_eq!(app.key(&id).await["status"], "active");
    assert_eq!(app.key_count().await, 1);
}

#[tokio::test]
async fn an_editor_can_create_and_revoke() {
    let app = DashApp::spawn().await;
    let (editor_id, token) = app.member("editor").await;
    let editor = app.sign_in(&token).await;
    let created = app
        .post(
            "/dashboard/keys",
            Some(&editor),
            &[("csrf", &editor.csrf), ("name", "by editor")],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = crate::helpers::attribute_after(&created.body, "href=\"/dashboard/keys/")
        .expect("link to the key");
    let revoked = app
        .post(
            &format!("/dashboard/keys/{id}/revoke"),
            Some(&editor),
            &[("csrf", &editor.csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(app.key(&id).await["status"], "revoked");
    let audit = app.audit().await;
    let revoke = audit
        .iter()
        .find(|e| e["action"] == "key.revoke")
        .expect("audited");
    assert_eq!(revoke["actor"], editor_id.as_str());
}

#[tokio::test]
async fn another_workspaces_key_is_not_found() {
    let app = DashApp::spawn().await;
    let other = keygate_server::bootstrap::create_workspace(
        app.state.store.as_ref(),
        &app.state.secret,
        app.state.clock.as_ref(),
        "other",
        keygate_server::default_prefix(),
    )
    .await
    .expect("second workspace");
    let (status, body) = app
        .api(
            reqwest::Method::POST,
            "/v1/keys",
            other.token.expose(),
            Some(serde_json::json!({"name": "theirs"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let theirs = body["id"].as_str().expect("id").to_owned();
    let session = app.owner().await;
    let page = app
        .get(&format!("/dashboard/keys/{theirs}"), Some(&session))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("theirs"));
    for action in ["disable", "revoke"] {
        let forged = app
            .post(
                &format!("/dashboard/keys/{theirs}/{action}"),
                Some(&session),
                &[("csrf", &session.csrf), ("confirm", "yes")],
            )
            .await;
        assert_eq!(forged.status, StatusCode::NOT_FOUND, "{action}");
    }
    let (_, key) = app
        .api(
            reqwest::Method::GET,
            &format!("/v1/keys/{theirs}"),
            other.token.expose(),
            None,
        )
        .await;
    assert_eq!(key["status"], "active");
    let list = app.get("/dashboard/keys", Some(&session)).await;
    assert!(!list.body.contains("theirs"));
}
