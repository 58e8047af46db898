//! Regression tests for issue #15 (security_reservations). Run all with `cargo test -p keygate-server --test api security`.
//!
//! A reservation belongs to the workspace and key that made it: nobody else can settle or
//! release it, whatever id they send, and ids cannot be guessed. Each scenario runs on the
//! in-process limiter and on Redis.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::TestApp;

on_servers!(
    in_process: crate::backends::Served::sqlite,
    #[ignore = "needs Redis: KEYGATE_TEST_REDIS_URL (scripts/test sets it when Redis answers)"]
    redis: crate::backends::Served::redis
    => [
        security_another_workspace_cannot_settle_or_release_a_reservation,
        security_reservation_ids_are_unguessable,
        security_malformed_reservation_ids_answer_404,
    ]
);

/// A key of the app's first workspace with a $1.00 cost limit, and its secret.
async fn limited_key(app: &TestApp) -> (String, String) {
    let created = app
        .create_key(json!({
            "name": keygate_core::ids::new_id("k"),
            "limits": {"cost_limit": {"limit": "1.00", "reset": "monthly"}},
        }))
        .await;
    (
        created["id"].as_str().expect("id").to_owned(),
        created["secret"].as_str().expect("secret").to_owned(),
    )
}

async fn reserve(app: &TestApp, secret: &str, cost: &str) -> String {
    let reply = app
        .owner_post(
            "/v1/reservations",
            json!({"key": secret, "cost": cost, "ttl": "10m"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["reservation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no reservation id in {}", reply.body))
        .to_owned()
}

/// Micro-dollars the key has used against its cost limit, holds included.
async fn cost_used(app: &TestApp, key_id: &str) -> i64 {
    let reply = app.owner_get(&format!("/v1/keys/{key_id}/limits")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["limits"]
        .as_array()
        .and_then(|limits| limits.iter().find(|l| l["kind"] == "cost"))
        .and_then(|l| l["used"].as_i64())
        .unwrap_or_else(|| panic!("no cost limit in {}", reply.body))
}

/// Every id an attacker in workspace `theirs` could derive from a victim's id `rid` of
/// workspace `ours`, plus the guesses a counter would make easy.
fn forged_ids(rid: &str, ours: &str, theirs: &str) -> Vec<String> {
    let mut ids = vec![rid.to_owned(), rid.replace(ours, theirs)];
    if let Some((_, inner)) = rid.split_once('.') {
        ids.push(format!("rsv_{theirs}.{inner}"));
        ids.push(inner.to_owned());
    }
    if let Some((inner, _)) = rid.rsplit_once('.') {
        ids.push(format!("{inner}.key_{}", "A".repeat(20)));
    }
    for n in 0..4 {
        ids.push(format!("rsv_{theirs}.rsv_{n}"));
        ids.push(format!("rsv_{ours}.rsv_{n}"));
        ids.push(format!("rsv_{n}"));
    }
    ids
}

/// The reproduction: workspace A reserves $0.50; its owner's and a viewer's tokens
/// of workspace B try to settle it at $500 and to release it, by every id they can derive.
/// All answer 404 like an unknown id, A's key still shows only its hold, and A can still
/// settle its own reservation afterwards.
async fn security_another_workspace_cannot_settle_or_release_a_reservation(app: &TestApp) {
    let (key_id, secret) = limited_key(app).await;
    let rid = reserve(app, &secret, "0.50").await;
    let (their_ws, their_owner) = app.second_workspace().await;
    let viewer = app
        .create(
            "/v1/members",
            &their_owner,
            json!({"name": "viewer of B", "role": "viewer"}),
        )
        .await;
    let their_viewer = viewer["token"].as_str().expect("token").to_owned();

    for forged in forged_ids(&rid, &app.workspace_id, &their_ws) {
        for (action, body) in [("settle", json!({"cost": "500"})), ("release", json!({}))] {
            let path = format!("/v1/reservations/{forged}/{action}");
            app.post(&path, &their_owner, body.clone())
                .await
                .assert_error(StatusCode::NOT_FOUND, "not_found");
            // Viewers may be refused for their role first; either way nothing happens.
            let reply = app.post(&path, &their_viewer, body).await;
            assert!(
                reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::FORBIDDEN,
                "{path} as B's viewer: {} {}",
                reply.status,
                reply.body
            );
        }
    }
    assert_eq!(cost_used(app, &key_id).await, 500_000, "only A's own hold");
    let verified = app.verify(json!({"key": secret})).await;
    assert_eq!(verified["code"], "valid", "{verified}");

    let settled = app.owner_settle(&rid, json!({"cost": "0.25"})).await;
    assert_eq!(settled.status, StatusCode::OK, "{}", settled.body);
    assert_eq!(cost_used(app, &key_id).await, 250_000);
}

/// Ids are not a sequence: many reservations give distinct ids that carry at least 96 bits
/// of randomness, and the ids next to a real one (±1 in any hex digit) are all unknown.
async fn security_reservation_ids_are_unguessable(app: &TestApp) {
    let (_, secret) = limited_key(app).await;
    let ids: Vec<String> =
        futures::future::join_all((0..20).map(|_| reserve(app, &secret, "0"))).await;
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    for id in &ids {
        let hex_digits = id.chars().filter(char::is_ascii_hexdigit).count();
        assert!(hex_digits >= 24, "{id} has too little randomness");
        assert!(
            !ids.iter()
                .any(|other| other != id && common_prefix(id, other) + 4 >= id.len()),
            "{id} looks sequential: {ids:?}"
        );
    }
    let rid = &ids[0];
    let neighbours = rid
        .char_indices()
        .filter(|(_, c)| c.is_ascii_hexdigit())
        .filter_map(|(i, c)| {
            let digit = c.to_digit(16)?;
            let next = char::from_digit((digit + 1) % 16, 16)?;
            Some(format!("{}{next}{}", &rid[..i], &rid[i + 1..]))
        })
        .take(8);
    for guess in neighbours {
        app.owner_post(&format!("/v1/reservations/{guess}/release"), json!({}))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// Bad input never panics or answers 500: every malformed id is the same 404.
async fn security_malformed_reservation_ids_answer_404(app: &TestApp) {
    let (_, secret) = limited_key(app).await;
    let rid = reserve(app, &secret, "0.10").await;
    let long = "f".repeat(4096);
    let malformed: Vec<String> = vec![
        "x".into(),
        "rsv_".into(),
        "rsv_.".into(),
        ".".into(),
        format!("{rid}."),
        format!(".{rid}"),
        format!("{rid}.key_x"),
        format!("{rid}{{x}}"),
        format!("{rid}%00"),
        rid.replace('.', ":"),
        rid.to_uppercase(),
        format!("rsv_{long}"),
        format!("rsv_{long}.key_{long}"),
        "rsv_%7Bws%7D.rsv_1".into(),
        "rsv_ffffffffffffffffffffffffffffffff.key_%2A".into(),
    ];
    for id in malformed {
        for action in ["settle", "release"] {
            let reply = app
                .owner_post(
                    &format!("/v1/reservations/{id}/{action}"),
                    json!({"cost": "1"}),
                )
                .await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id}: {}", reply.body);
            assert_eq!(reply.code(), "not_found", "{id}: {}", reply.body);
        }
    }
    let release: Value = app
        .owner_post(&format!("/v1/reservations/{rid}/release"), json!({}))
        .await
        .body;
    assert_eq!(release["released"], true, "{release}");
}
