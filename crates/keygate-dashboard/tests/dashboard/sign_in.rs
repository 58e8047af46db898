//! Signing in with a management token or a one-time link, and how sessions end.

use keygate_dashboard::DashboardSettings;
use reqwest::StatusCode;

use crate::helpers::DashApp;

#[tokio::test]
async fn a_token_signs_in_with_a_strict_http_only_cookie() {
    let app = DashApp::spawn().await;
    let signed_in = app
        .post("/dashboard/sign-in", None, &[("token", &app.owner_token)])
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let cookie = signed_in.set_cookie();
    assert!(cookie.starts_with("keygate_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    // Plain HTTP, and `X-Forwarded-Proto` is not believed without --trust-proxy.
    assert!(!cookie.contains("Secure"), "{cookie}");
    let forwarded = app
        .post_with(
            "/dashboard/sign-in",
            None,
            &[("token", &app.owner_token)],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert!(!forwarded.set_cookie().contains("Secure"));
    let session = app.session_from(&signed_in).await;
    let keys = app.get("/dashboard/keys", Some(&session)).await;
    assert!(keys.body.contains("API keys"));
    // The cookie holds a random id, never the token.
    assert!(!cookie.contains(&app.owner_token));
}

#[tokio::test]
async fn behind_a_trusted_tls_proxy_the_cookie_is_secure() {
    let app = DashApp::spawn_with(DashboardSettings {
        trust_proxy: true,
        ..DashboardSettings::default()
    })
    .await;
    let signed_in = app
        .post_with(
            "/dashboard/sign-in",
            None,
            &[("token", &app.owner_token)],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    assert!(
        signed_in.set_cookie().contains("; Secure"),
        "{}",
        signed_in.set_cookie()
    );
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_the_address_is_throttled_after_ten() {
    let app = DashApp::spawn().await;
    let refused = app
        .post("/dashboard/sign-in", None, &[("token", "kgm_mgmt_nope")])
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("not valid"), "{}", refused.body);
    assert!(refused.set_cookie().is_empty());
    for _ in 1..10 {
        let again = app
            .post("/dashboard/sign-in", None, &[("token", "kgm_mgmt_nope")])
            .await;
        assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    }
    // Even the right token waits out the window now.
    let throttled = app
        .post("/dashboard/sign-in", None, &[("token", &app.owner_token)])
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance_millis(15 * 60 * 1000);
    let later = app
        .post("/dashboard/sign-in", None, &[("token", &app.owner_token)])
        .await;
    assert_eq!(later.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_sign_in_link_works_once_and_its_reuse_is_refused_and_audited() {
    let app = DashApp::spawn().await;
    // Opening the link only shows a button (a prefetch uses nothing).
    let opened = app.get(&app.owner_link, None).await;
    assert_eq!(opened.status, StatusCode::OK);
    assert!(opened.body.contains("action=\"/dashboard/sign-in/link\""));
    let secret = DashApp::link_secret(&app.owner_link).to_owned();
    let used = app
        .post("/dashboard/sign-in/link", None, &[("secret", &secret)])
        .await;
    let session = app.session_from(&used).await;
    assert!(!session.cookie.is_empty());

    let again = app
        .post("/dashboard/sign-in/link", None, &[("secret", &secret)])
        .await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.body.contains("already used"), "{}", again.body);
    assert!(again.set_cookie().is_empty());
    let reopened = app.get(&app.owner_link, None).await;
    assert_eq!(reopened.status, StatusCode::GONE);

    let audit = app.audit().await;
    let actions: Vec<&str> = audit.iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"member.sign_in"), "{actions:?}");
    let failed = audit
        .iter()
        .find(|e| e["action"] == "member.sign_in_failed")
        .expect("the refused reuse is audited");
    assert_eq!(failed["changes"]["reason"], "used");
    assert!(!failed.to_string().contains(&secret));
    let signed_in = audit
        .iter()
        .find(|e| e["action"] == "member.sign_in")
        .expect("sign-in");
    assert_eq!(signed_in["actor"], app.owner_id.as_str());
}

#[tokio::test]
async fn an_expired_sign_in_link_is_refused() {
    let app = DashApp::spawn().await;
    app.clock.advance_millis(15 * 60 * 1000 + 1);
    let opened = app.get(&app.owner_link, None).await;
    assert_eq!(opened.status, StatusCode::GONE);
    assert!(opened.body.contains("expired"), "{}", opened.body);
    let secret = DashApp::link_secret(&app.owner_link).to_owned();
    let used = app
        .post("/dashboard/sign-in/link", None, &[("secret", &secret)])
        .await;
    assert_eq!(used.status, StatusCode::GONE);
    assert!(used.set_cookie().is_empty());
    let unknown = app
        .post("/dashboard/sign-in/link", None, &[("secret", "00ff")])
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let app = DashApp::spawn().await;
    let session = app.owner().await;
    let out = app
        .post(
            "/dashboard/sign-out",
            Some(&session),
            &[("csrf", &session.csrf)],
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.set_cookie().contains("Max-Age=0"));
    let after = app.get("/dashboard/keys", Some(&session)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/dashboard/sign-in");
}

#[tokio::test]
async fn an_idle_session_ends_and_so_does_a_long_one() {
    let app = DashApp::spawn().await;
    let session = app.owner().await;
    app.clock.advance_millis(29 * 60 * 1000);
    assert_eq!(
        app.get("/dashboard/keys", Some(&session)).await.status,
        StatusCode::OK
    );
    app.clock.advance_millis(31 * 60 * 1000);
    let idle = app.get("/dashboard/keys", Some(&session)).await;
    assert_eq!(idle.location(), "/dashboard/sign-in");

    // Active every 20 minutes, still ended after 12 hours.
    let session = app.owner().await;
    for _ in 0..36 {
        app.clock.advance_millis(20 * 60 * 1000);
        let _ = app.get("/dashboard/keys", Some(&session)).await;
    }
    let long = app.get("/dashboard/keys", Some(&session)).await;
    assert_eq!(long.location(), "/dashboard/sign-in");
}

#[tokio::test]
async fn deleting_a_member_ends_their_sessions() {
    let app = DashApp::spawn().await;
    let (id, token) = app.member("editor").await;
    let session = app.sign_in(&token).await;
    let (status, _) = app
        .api(
            reqwest::Method::DELETE,
            &format!("/v1/members/{id}"),
            &app.owner_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let after = app.get("/dashboard/keys", Some(&session)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/dashboard/sign-in");
}
