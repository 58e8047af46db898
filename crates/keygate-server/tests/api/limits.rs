//! Limits over HTTP: every limit code, headers, policies, and the concurrency guarantees —
//! in-process and on Redis with two Keygate servers sharing it.

use chrono::Duration;
use futures::future::join_all;
use keygate_core::Clock;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::backends::redis_url;
use crate::helpers::{Spawn, TestApp};

async fn key_with_limits(app: &TestApp, limits: Value) -> (String, String) {
    let created = app
        .create_key(json!({"name": keygate_core::ids::new_id("k"), "limits": limits}))
        .await;
    (
        created["id"].as_str().expect("id").to_owned(),
        created["secret"].as_str().expect("secret").to_owned(),
    )
}

/// Sends `n` verifies at once to the given servers (round robin) and counts the valid ones.
async fn concurrent_valid(apps: &[&TestApp], secret: &str, n: usize) -> (usize, Vec<Value>) {
    let calls = (0..n).map(|i| {
        let app = apps[i % apps.len()];
        async move { app.verify(json!({"key": secret})).await }
    });
    let replies = join_all(calls).await;
    let valid = replies.iter().filter(|r| r["valid"] == true).count();
    (valid, replies)
}

#[tokio::test]
async fn two_hundred_concurrent_requests_against_fifty_admit_exactly_fifty() {
    let app = TestApp::spawn().await;
    let (_, secret) = key_with_limits(
        &app,
        json!({"rate_limits": [{"limit": 50, "window": "1m"}]}),
    )
    .await;
    let (valid, replies) = concurrent_valid(&[&app], &secret, 200).await;
    assert_eq!(valid, 50);
    for r in replies.iter().filter(|r| r["valid"] == false) {
        assert_eq!(r["code"], "rate_limited");
        assert_eq!(r["status"], 429);
        let retry = r["retry_after"].as_u64().expect("retry_after");
        assert!((1..=60).contains(&retry), "{r}");
    }
}

#[tokio::test]
#[ignore = "needs Redis: KEYGATE_TEST_REDIS_URL (scripts/test sets it when Redis answers)"]
async fn two_servers_sharing_redis_admit_exactly_fifty() {
    let redis = redis_url();
    let a = TestApp::spawn_with(Spawn::with_redis(&redis)).await;
    let b = a.another_node(Some(redis)).await;
    let (_, secret) =
        key_with_limits(&a, json!({"rate_limits": [{"limit": 50, "window": "1m"}]})).await;
    let b_verify = |secret: String| {
        let b = &b;
        let token = a.owner_token.clone();
        async move {
            b.post("/v1/keys/verify", &token, json!({"key": secret}))
                .await
                .body
        }
    };
    let calls = (0..200).map(|i| {
        let secret = secret.clone();
        let a = &a;
        let b_verify = &b_verify;
        async move {
            if i % 2 == 0 {
                a.verify(json!({"key": secret})).await
            } else {
                b_verify(secret).await
            }
        }
    });
    let replies = join_all(calls).await;
    let valid = replies.iter().filter(|r| r["valid"] == true).count();
    assert_eq!(valid, 50, "two nodes share one count");
    assert!(replies
        .iter()
        .filter(|r| r["valid"] == false)
        .all(|r| r["code"] == "rate_limited"));
}

#[tokio::test]
async fn reservations_never_overspend_a_budget() {
    let app = TestApp::spawn().await;
    reservations_against_one_dollar(&app).await;
}

#[tokio::test]
#[ignore = "needs Redis: KEYGATE_TEST_REDIS_URL (scripts/test sets it when Redis answers)"]
async fn reservations_never_overspend_a_budget_on_redis() {
    let app = TestApp::spawn_with(Spawn::with_redis(redis_url())).await;
    reservations_against_one_dollar(&app).await;
}

/// 1,000 concurrent reservations of $0.01 against a $1.00 cost limit, each settled at the
/// amount it reserved: the settled spend is at most $1.00 and at least $0.95.
async fn reservations_against_one_dollar(app: &TestApp) {
    let (id, secret) = key_with_limits(
        app,
        json!({"cost_limit": {"limit": "1.00", "reset": "monthly"}}),
    )
    .await;
    let calls = (0..1000).map(|_| {
        let secret = secret.clone();
        async move {
            let reserved = app
                .owner_post(
                    "/v1/reservations",
                    json!({"key": secret, "cost": "0.01", "ttl": "5m"}),
                )
                .await;
            assert_eq!(reserved.status, StatusCode::OK, "{}", reserved.body);
            match reserved.body["reservation_id"].as_str() {
                Some(rid) => {
                    let settled = app.owner_settle(rid, json!({"cost": "0.01"})).await;
                    assert_eq!(settled.status, StatusCode::OK, "{}", settled.body);
                    1
                }
                None => {
                    assert_eq!(
                        reserved.body["code"], "cost_limit_reached",
                        "{}",
                        reserved.body
                    );
                    0
                }
            }
        }
    });
    let settled: u32 = join_all(calls).await.into_iter().sum();
    let limits = app.owner_get(&format!("/v1/keys/{id}/limits")).await;
    let cost = limits.body["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .find(|l| l["kind"] == "cost")
        .expect("cost limit")
        .clone();
    let used = cost["used"].as_i64().expect("used");
    assert_eq!(used, i64::from(settled) * 10_000);
    assert!(used <= 1_000_000, "overspent: {used} micros");
    assert!(used >= 950_000, "underspent: {used} micros");
}

#[tokio::test]
async fn each_budget_answers_with_its_own_code() {
    let app = TestApp::spawn().await;
    let (_, tokens) = key_with_limits(
        &app,
        json!({"token_limit": {"limit": 100, "reset": "daily"}}),
    )
    .await;
    assert_eq!(
        app.verify(json!({"key": tokens, "tokens": 60})).await["code"],
        "valid"
    );
    let refused = app.verify(json!({"key": tokens, "tokens": 60})).await;
    assert_eq!(
        (refused["code"].as_str(), refused["status"].as_u64()),
        (Some("token_limit_reached"), Some(429))
    );
    assert!(refused["retry_after"].as_u64().is_some());
    assert_eq!(
        app.verify(json!({"key": tokens, "tokens": 40})).await["code"],
        "valid"
    );

    let (_, cost) = key_with_limits(
        &app,
        json!({"cost_limit": {"limit": "0.10", "reset": "weekly"}}),
    )
    .await;
    assert_eq!(
        app.verify(json!({"key": cost, "cost": 0.06})).await["code"],
        "valid"
    );
    let refused = app.verify(json!({"key": cost, "cost": "0.05"})).await;
    assert_eq!(
        (refused["code"].as_str(), refused["status"].as_u64()),
        (Some("cost_limit_reached"), Some(429))
    );

    let (_, cap) = key_with_limits(&app, json!({"daily_spend_cap": "0.05"})).await;
    assert_eq!(
        app.verify(json!({"key": cap, "cost": "0.05"})).await["code"],
        "valid"
    );
    let refused = app.verify(json!({"key": cap, "cost": "0.01"})).await;
    assert_eq!(
        (refused["code"].as_str(), refused["status"].as_u64()),
        (Some("spend_cap_reached"), Some(402))
    );
    // The cap resets at 00:00 UTC.
    let now = app.clock.now_millis();
    let next_midnight = (now / 86_400_000 + 1) * 86_400_000;
    app.clock.advance_millis(next_midnight - now);
    assert_eq!(
        app.verify(json!({"key": cap, "cost": "0.01"})).await["code"],
        "valid"
    );
}

#[tokio::test]
async fn the_workspace_credit_balance_is_the_final_backstop() {
    let app = TestApp::spawn().await;
    app.patch_workspace(json!({"credit_balance": "0.02"})).await;
    let (_, credits) = app.new_key("credits").await;
    assert_eq!(
        app.verify(json!({"key": credits, "cost": "0.02"})).await["code"],
        "valid"
    );
    let refused = app.verify(json!({"key": credits, "cost": "0.01"})).await;
    assert_eq!(
        (refused["code"].as_str(), refused["status"].as_u64()),
        (Some("insufficient_credits"), Some(402))
    );
    // Every key of the workspace draws on the same balance.
    let (_, another) = app.new_key("another").await;
    assert_eq!(
        app.verify(json!({"key": another, "cost": "0.01"})).await["code"],
        "insufficient_credits"
    );
    // A top-up raises the balance (it is the total granted).
    app.owner_patch("/v1/workspace", json!({"credit_balance": "0.03"}))
        .await;
    assert_eq!(
        app.verify(json!({"key": another, "cost": "0.01"})).await["code"],
        "valid"
    );
}

#[tokio::test]
async fn usage_reported_afterwards_counts_against_the_budget() {
    let app = TestApp::spawn().await;
    let (id, secret) = key_with_limits(
        &app,
        json!({"token_limit": {"limit": 1000, "reset": "monthly"}}),
    )
    .await;
    assert_eq!(app.verify_code(&secret).await, "valid");
    let reported = app
        .owner_post("/v1/usage", json!({"key_id": id, "tokens": 1000}))
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.body);
    assert_eq!(app.verify_code(&secret).await, "token_limit_reached");
    let limits = app.owner_get(&format!("/v1/keys/{id}/limits")).await;
    let tokens = limits.body["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .find(|l| l["kind"] == "tokens")
        .expect("tokens")
        .clone();
    assert_eq!(tokens["used"], 1000);
    assert_eq!(tokens["remaining"], 0);
    assert!(tokens["reset_at"].is_string());
}

#[tokio::test]
async fn rate_limit_headers_and_retry_after_are_exact() {
    let app = TestApp::spawn().await;
    let (_, secret) =
        key_with_limits(&app, json!({"rate_limits": [{"limit": 2, "window": "1m"}]})).await;
    let first = app
        .owner_post("/v1/keys/verify", json!({"key": secret}))
        .await;
    assert_eq!(first.headers["ratelimit-limit"], "2");
    assert_eq!(first.headers["ratelimit-remaining"], "1");
    app.clock.advance_millis(20_500);
    app.verify(json!({"key": secret})).await;
    let refused = app
        .owner_post("/v1/keys/verify", json!({"key": secret}))
        .await;
    assert_eq!(refused.body["code"], "rate_limited");
    assert_eq!(refused.headers["ratelimit-remaining"], "0");
    // The first request leaves the window 60 s after it was made: 39.5 s from now → 40.
    assert_eq!(refused.headers["retry-after"], "40");
    assert_eq!(refused.body["retry_after"], 40);
    app.clock.advance_millis(39_500);
    assert_eq!(app.verify_code(&secret).await, "valid");
}

#[tokio::test]
async fn workspace_default_applies_and_a_policy_can_only_tighten() {
    let app = TestApp::spawn().await;
    app.patch_workspace(json!({
                "default_rate_limits": [{"limit": 5, "window": "1m"}],
                "rate_limit_policies": {"strict": [{"limit": 1, "window": "1m"}], "loose": [{"limit": 1000, "window": "1m"}]}
            })).await;
    let (_, secret) = app.new_key("defaulted").await;
    let with_policy = |policy: &'static str| {
        let app = &app;
        let secret = secret.clone();
        async move {
            let r = app
                .client
                .post(format!("{}/v1/keys/verify", app.base))
                .bearer_auth(&app.owner_token)
                .header("keygate-ratelimit-policy", policy)
                .json(&json!({"key": secret}))
                .send()
                .await
                .expect("send");
            crate::helpers::Reply::from(r).await
        }
    };
    assert_eq!(with_policy("strict").await.body["code"], "valid");
    assert_eq!(with_policy("strict").await.body["code"], "rate_limited");
    // "loose" adds a window; the default 5/min still holds.
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(
            with_policy("loose").await.body["code"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    // One request went through under "strict" (the refused one consumed nothing): 4 remain.
    assert_eq!(
        codes.iter().filter(|c| *c == "valid").count(),
        4,
        "{codes:?}"
    );
    with_policy("nope")
        .await
        .assert_error(StatusCode::CONFLICT, "unknown_reference");
    app.clock
        .advance_millis(Duration::minutes(1).num_milliseconds());
    assert_eq!(app.verify_code(&secret).await, "valid");
}

#[tokio::test]
async fn limit_changes_take_effect_on_the_next_request() {
    let app = TestApp::spawn().await;
    let (id, secret) =
        key_with_limits(&app, json!({"rate_limits": [{"limit": 1, "window": "1h"}]})).await;
    assert_eq!(app.verify_code(&secret).await, "valid");
    assert_eq!(app.verify_code(&secret).await, "rate_limited");
    let patched = app
        .owner_patch(
            &format!("/v1/keys/{id}"),
            json!({"limits": {"rate_limits": [{"limit": 3, "window": "1h"}]}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(app.verify_code(&secret).await, "valid");
    let shown = app.owner_get(&format!("/v1/keys/{id}")).await;
    assert_eq!(shown.body["limits"]["rate_limits"][0]["limit"], 3);
}

#[tokio::test]
async fn an_unreachable_limiter_fails_closed_with_503() {
    let app = TestApp::spawn_with(Spawn::with_redis("redis://127.0.0.1:1")).await;
    let (_, secret) = key_with_limits(
        &app,
        json!({"rate_limits": [{"limit": 100, "window": "1m"}]}),
    )
    .await;
    let reply = app
        .owner_post("/v1/keys/verify", json!({"key": secret}))
        .await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "limiter_unavailable");
}

#[tokio::test]
async fn reservations_belong_to_their_workspace() {
    let app = TestApp::spawn().await;
    let (_, secret) = key_with_limits(&app, json!({"cost_limit": {"limit": "1.00"}})).await;
    let reserved = app
        .owner_post("/v1/reservations", json!({"key": secret, "cost": "0.50"}))
        .await;
    let rid = reserved.body["reservation_id"]
        .as_str()
        .expect("rid")
        .to_owned();
    let (_, other) = app.second_workspace().await;
    app.post(
        &format!("/v1/reservations/{rid}/release"),
        &other,
        json!({}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
    let released = app
        .owner_post(&format!("/v1/reservations/{rid}/release"), json!({}))
        .await;
    assert_eq!(released.status, StatusCode::OK);
    app.owner_settle(&rid, json!({"cost": "0.5"}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
#[ignore = "needs Redis: KEYGATE_TEST_REDIS_URL (scripts/test sets it when Redis answers)"]
async fn a_revocation_on_one_node_reaches_the_other_through_redis() {
    let redis = redis_url();
    let a = TestApp::spawn_with(Spawn::with_redis(&redis)).await;
    let b = a.another_node(Some(redis)).await;
    let (id, secret) = a.new_key("shared").await;
    let verify_on_b = || async {
        b.post("/v1/keys/verify", &a.owner_token, json!({"key": secret}))
            .await
            .body["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    // B caches the key as valid (its cache TTL is 30 s, far longer than this test).
    assert_eq!(verify_on_b().await, "valid");
    assert_eq!(verify_on_b().await, "valid");
    a.key_action(&id, "revoke").await;
    let mut code = verify_on_b().await;
    for _ in 0..20 {
        if code == "revoked" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        code = verify_on_b().await;
    }
    assert_eq!(
        code, "revoked",
        "node B must learn of the revocation from Redis, not from its cache TTL"
    );
}
