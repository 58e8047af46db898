//! Nothing secret reaches a log line: not the management token pasted to sign in, not a
//! one-time link's secret, not the session cookie or its CSRF token, not a new key's secret.

use reqwest::StatusCode;

use crate::helpers::{attribute_after, captured_logs, DashApp};

#[tokio::test]
async fn no_secret_of_the_dashboard_is_logged() {
    let app = DashApp::spawn().await;
    let link_secret = DashApp::link_secret(&app.owner_link).to_owned();
    let _ = app.get(&app.owner_link, None).await;
    let by_link = app
        .post("/dashboard/sign-in/link", None, &[("secret", &link_secret)])
        .await;
    let link_session = app.session_from(&by_link).await;
    let reused = app
        .post("/dashboard/sign-in/link", None, &[("secret", &link_secret)])
        .await;
    assert_eq!(reused.status, StatusCode::GONE);
    let wrong_token = format!("{}x", app.owner_token);
    let refused = app
        .post("/dashboard/sign-in", None, &[("token", &wrong_token)])
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let session = app.owner().await;
    let created = app
        .post(
            "/dashboard/keys",
            Some(&session),
            &[("csrf", &session.csrf), ("name", "logged?")],
        )
        .await;
    let secret = attribute_after(&created.body, "readonly value=\"").expect("secret");
    let _ = app
        .post(
            "/dashboard/sign-out",
            Some(&session),
            &[("csrf", &session.csrf)],
        )
        .await;

    let logs = captured_logs();
    assert!(
        logs.contains("dashboard sign-in refused"),
        "the refusal is logged"
    );
    for (what, value) in [
        ("the owner's token", app.owner_token.as_str()),
        ("a wrong token", wrong_token.as_str()),
        ("the link's secret", link_secret.as_str()),
        ("a session id", session.cookie.as_str()),
        ("another session id", link_session.cookie.as_str()),
        ("a CSRF token", session.csrf.as_str()),
        ("a key's secret", secret.as_str()),
    ] {
        assert!(!logs.contains(value), "{what} was logged");
    }
}
