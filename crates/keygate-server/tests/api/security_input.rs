//! Regression tests for issue #15 (security_input): money that cannot go negative, display
//! forms that cannot reveal a key, an import that is no cross-tenant oracle, bounded client
//! strings and error answers that name no policies. Run all with
//! `cargo test -p keygate-server --test api security`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp};
use crate::upstream::Echo;

both_backends!(
    security_import_is_no_oracle_for_other_workspaces,
    security_legacy_display_reveals_at_most_eight_characters_anywhere,
);

/// Amounts no money field may accept: signs, exponents that hide a sign, more than six
/// decimals, more than the maximum, non-ASCII digits, hex, whitespace, words.
const BAD_AMOUNTS: &[&str] = &[
    "+-1000e0",
    "+-5e0",
    "-1",
    "-0.01",
    "-0",
    "+1",
    "1e400",
    "1e10",
    "0.0000001",
    "1000000000.000001",
    "1000000001",
    "99999999999999999999999",
    "١٢",
    "１",
    "0x10",
    " 1",
    "1 ",
    "NaN",
    "inf",
    "",
    ".",
    "1..2",
    "1e",
    "e5",
];

/// The same as JSON numbers.
fn bad_numbers() -> Vec<Value> {
    vec![
        json!(-5),
        json!(-0.01),
        json!(-0.0),
        json!(1e-7),
        json!(1e10),
    ]
}

fn bad_values() -> Vec<Value> {
    BAD_AMOUNTS
        .iter()
        .map(|s| json!(s))
        .chain(bad_numbers())
        .collect()
}

fn assert_refused(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{what}: {}",
        reply.body
    );
    assert!(
        matches!(reply.code(), "invalid_request" | "invalid_json"),
        "{what}: {}",
        reply.body
    );
}

#[tokio::test]
async fn security_money_refuses_negative_exotic_and_huge_amounts_everywhere() {
    let app = TestApp::spawn().await;
    let (key_id, secret) = app.new_key("spender").await;
    let reserved = app
        .owner_post("/v1/reservations", json!({"key": secret, "cost": "0.01"}))
        .await;
    assert_eq!(reserved.status, StatusCode::OK, "{}", reserved.body);
    let reservation = reserved.body["reservation_id"]
        .as_str()
        .expect("reservation id")
        .to_owned();

    for bad in bad_values() {
        let what = format!("amount {bad}");
        let verify = app
            .owner_post("/v1/keys/verify", json!({"key": secret, "cost": bad}))
            .await;
        assert_refused(&verify, &format!("verify {what}"));
        let report = app
            .owner_post("/v1/usage", json!({"key_id": key_id, "cost": bad}))
            .await;
        assert_refused(&report, &format!("usage report {what}"));
        let reserve = app
            .owner_post("/v1/reservations", json!({"key": secret, "cost": bad}))
            .await;
        assert_refused(&reserve, &format!("reserve {what}"));
        let settle = app.owner_settle(&reservation, json!({"cost": bad})).await;
        assert_refused(&settle, &format!("settle {what}"));
        for limits in [
            json!({"cost_limit": {"limit": bad, "reset": "monthly"}}),
            json!({"daily_spend_cap": bad}),
        ] {
            let created = app
                .owner_post("/v1/keys", json!({"name": "never", "limits": limits}))
                .await;
            assert_refused(&created, &format!("create key {what}"));
            let updated = app
                .owner_patch(&format!("/v1/keys/{key_id}"), json!({"limits": limits}))
                .await;
            assert_refused(&updated, &format!("update key {what}"));
        }
        let credits = app
            .owner_patch("/v1/workspace", json!({"credit_balance": bad}))
            .await;
        assert_refused(&credits, &format!("credit balance {what}"));
    }

    // Nothing above moved any total, and the maximum itself is an amount.
    let usage = app
        .owner_get(&format!("/v1/keys/{key_id}/usage?days=1"))
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    let workspace = app.owner_get("/v1/workspace").await;
    assert!(
        workspace.body["credit_balance"].is_null(),
        "{}",
        workspace.body
    );
    let at_max = app
        .owner_post(
            "/v1/keys/verify",
            json!({"key": secret, "cost": "1000000000"}),
        )
        .await;
    assert_eq!(at_max.status, StatusCode::OK, "{}", at_max.body);
    let exact = app
        .patch_workspace(json!({"credit_balance": 0.000001}))
        .await;
    assert_eq!(exact["credit_balance"], "0.000001");
    app.state.usage.flush().await;
    let usage = app
        .owner_get(&format!("/v1/keys/{key_id}/usage?days=1"))
        .await;
    assert_eq!(
        usage.body["totals"]["cost"], "1000000000.00",
        "{}",
        usage.body
    );
}

/// The legacy key of the issue: its display form once showed everything but `v1`.
const LEGACY: &str = "acme_S3cr3tP4ssw0rdXYZ0123456_v1";

/// No five consecutive characters of `secret` appear in `text`.
fn reveals_nothing(text: &str, secret: &str) -> bool {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .windows(5)
        .all(|w| !text.contains(&w.iter().collect::<String>()))
}

fn request_id(reply: &Reply) -> String {
    reply
        .headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request-id")
        .to_owned()
}

async fn security_legacy_display_reveals_at_most_eight_characters_anywhere(app: &TestApp) {
    let imported = app
        .owner_create(
            "/v1/keys/import",
            json!({"name": "acme legacy", "key": LEGACY}),
        )
        .await;
    let id = imported["id"].as_str().expect("id").to_owned();
    let display = imported["display"].as_str().expect("display").to_owned();
    let shown = display.chars().filter(|c| *c != '…').count();
    assert!(shown <= 8, "{display} shows {shown} characters");
    assert!(reveals_nothing(&display, LEGACY), "{display}");

    // A check with the key, and failed attempts with keys of the same and of other shapes.
    let valid = app
        .owner_post("/v1/keys/verify", json!({"key": LEGACY}))
        .await;
    assert_eq!(valid.body["code"], "valid", "{}", valid.body);
    let near_misses = [
        "acme_S3cr3tP4ssw0rdXYZ0123456_v2".to_owned(),
        format!("x_{}_y", "S3cr3tP4ssw0rdXYZ".repeat(300)),
        "kg_S3cr3tP4ssw0rd_XYZ0123456789abcdef".to_owned(),
        "ab_cd_S3cr3tP4ssw0rdXYZ0123456789abcd".to_owned(),
    ];
    for presented in &near_misses {
        let reply = app
            .owner_post("/v1/keys/verify", json!({"key": presented}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_ne!(reply.body["code"], "valid");
    }
    app.state.usage.flush().await;

    let request = app
        .owner_get(&format!("/v1/requests/{}", request_id(&valid)))
        .await;
    assert_eq!(request.status, StatusCode::OK, "{}", request.body);
    let texts = [
        ("import answer", imported.to_string()),
        (
            "key",
            app.owner_get(&format!("/v1/keys/{id}"))
                .await
                .body
                .to_string(),
        ),
        (
            "key list",
            app.owner_get("/v1/keys?legacy=true").await.body.to_string(),
        ),
        (
            "audit trail",
            app.owner_get("/v1/audit").await.body.to_string(),
        ),
        ("request log", request.body.to_string()),
        (
            "failed attempts",
            app.owner_get("/v1/audit?action=auth.failed")
                .await
                .body
                .to_string(),
        ),
    ];
    for (place, text) in &texts {
        assert!(reveals_nothing(text, LEGACY), "{place}: {text}");
        for presented in &near_misses {
            assert!(reveals_nothing(text, presented), "{place}: {text}");
        }
    }
    let failures = app.owner_get("/v1/audit?action=auth.failed").await;
    for item in failures.body["items"].as_array().expect("items") {
        let display = item["key_display"].as_str().unwrap_or("");
        assert!(display.chars().count() <= 40, "{display}");
    }
}

async fn security_import_is_no_oracle_for_other_workspaces(app: &TestApp) {
    let shared = "shared-legacy-key-0123456789abcdef";
    let (_, other_token) = app.second_workspace().await;
    let theirs = app
        .create(
            "/v1/keys/import",
            &other_token,
            json!({"name": "theirs", "key": shared}),
        )
        .await;

    // Importing a key another workspace holds looks exactly like importing a new one.
    let ours = app
        .owner_create("/v1/keys/import", json!({"name": "ours", "key": shared}))
        .await;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        b"hashed-legacy-key-0123456789",
    ));
    for token in [other_token.as_str(), app.owner_token.as_str()] {
        app.create(
            "/v1/keys/import",
            token,
            json!({"name": "by hash", "sha256": sha}),
        )
        .await;
    }

    // Each workspace's verify finds its own key; a second import into the same workspace is
    // still refused.
    let mine = app
        .owner_post("/v1/keys/verify", json!({"key": shared}))
        .await;
    assert_eq!(mine.body["code"], "valid", "{}", mine.body);
    assert_eq!(mine.body["key"]["id"], ours["id"]);
    let other = app
        .post("/v1/keys/verify", &other_token, json!({"key": shared}))
        .await;
    assert_eq!(other.body["code"], "valid", "{}", other.body);
    assert_eq!(other.body["key"]["id"], theirs["id"]);
    app.owner_post("/v1/keys/import", json!({"name": "again", "key": shared}))
        .await
        .assert_error(StatusCode::CONFLICT, "already_imported");

    // Revoking one workspace's copy leaves the other's working.
    let ours_id = ours["id"].as_str().expect("id");
    app.key_action(ours_id, "revoke").await;
    let mine = app
        .owner_post("/v1/keys/verify", json!({"key": shared}))
        .await;
    assert_eq!(mine.body["code"], "revoked", "{}", mine.body);
    let other = app
        .post("/v1/keys/verify", &other_token, json!({"key": shared}))
        .await;
    assert_eq!(other.body["code"], "valid", "{}", other.body);
}

/// One field of one route, a value over its limit, and the words the 400 must contain.
struct Oversized {
    method: Method,
    path: String,
    body: Value,
    field: &'static str,
    limit: &'static str,
}

fn long(n: usize) -> String {
    "x".repeat(n)
}

#[tokio::test]
async fn security_every_stored_client_string_is_bounded_with_a_clear_400() {
    let app = TestApp::spawn().await;
    let (key_id, secret) = app.new_key("bounded").await;
    let project = app.owner_post("/v1/projects", json!({"name": "p"})).await;
    let rule = app
        .owner_create(
            "/v1/routing-rules",
            json!({"name": "r", "mode": "fallback", "targets": [{"provider": "openai"}]}),
        )
        .await;
    let rule_id = rule["id"].as_str().expect("rule id").to_owned();
    let _ = project;
    let many_policies: serde_json::Map<String, Value> = (0..51)
        .map(|i| (format!("p{i}"), json!([{"limit": 1, "window": "1m"}])))
        .collect();
    let many_models: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("m{i}"), json!("x"))).collect();
    let cases = vec![
        Oversized {
            method: Method::POST,
            path: "/v1/keys/verify".into(),
            body: json!({"key": secret, "project": long(200_000)}),
            field: "project",
            limit: "proj_",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/keys/verify".into(),
            body: json!({"key": secret, "project": "billing"}),
            field: "project",
            limit: "proj_",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/reservations".into(),
            body: json!({"key": secret, "project": long(5_000)}),
            field: "project",
            limit: "proj_",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/keys/verify".into(),
            body: json!({"key": secret, "operation": long(129)}),
            field: "operation",
            limit: "128",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/usage".into(),
            body: json!({"key_id": key_id, "operation": long(129)}),
            field: "operation",
            limit: "128",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/keys/verify".into(),
            body: json!({"key": secret, "source_ip": long(100)}),
            field: "source_ip",
            limit: "IP",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/keys".into(),
            body: json!({"name": long(101)}),
            field: "name",
            limit: "100",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/keys".into(),
            body: json!({"name": "ok", "description": long(1001)}),
            field: "description",
            limit: "1000",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/keys".into(),
            body: json!({"name": "ok", "metadata": {"blob": long(17 * 1024)}}),
            field: "metadata",
            limit: "16 KiB",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/keys".into(),
            body: json!({"name": "ok", "permissions": [long(101)]}),
            field: "permission",
            limit: "100",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/keys".into(),
            body: json!({"name": "ok", "scope": (0..101).map(|i| format!("proj_{i}")).collect::<Vec<_>>()}),
            field: "scope",
            limit: "100",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/keys/import".into(),
            body: json!({"name": long(101), "key": "legacy-key-0123456789abcdef"}),
            field: "name",
            limit: "100",
        },
        Oversized {
            method: Method::PATCH,
            path: format!("/v1/keys/{key_id}"),
            body: json!({"name": "bad\u{0}name"}),
            field: "name",
            limit: "control",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/projects".into(),
            body: json!({"name": long(101)}),
            field: "name",
            limit: "100",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/members".into(),
            body: json!({"name": long(101), "role": "viewer"}),
            field: "name",
            limit: "100",
        },
        Oversized {
            method: Method::PATCH,
            path: "/v1/workspace".into(),
            body: json!({"name": long(101)}),
            field: "name",
            limit: "100",
        },
        Oversized {
            method: Method::PATCH,
            path: "/v1/workspace".into(),
            body: json!({"rate_limit_policies": many_policies}),
            field: "rate_limit_policies",
            limit: "50",
        },
        Oversized {
            method: Method::PATCH,
            path: "/v1/workspace".into(),
            body: json!({"rate_limit_policies": {long(41): [{"limit": 1, "window": "1m"}]}}),
            field: "policy name",
            limit: "40",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/routing-rules".into(),
            body: json!({"name": "r2", "mode": "fallback", "targets": [{"provider": long(65)}]}),
            field: "provider",
            limit: "64",
        },
        Oversized {
            method: Method::PATCH,
            path: format!("/v1/routing-rules/{rule_id}"),
            body: json!({"targets": [{"provider": "openai", "models": many_models}]}),
            field: "models",
            limit: "100",
        },
        Oversized {
            method: Method::POST,
            path: "/v1/routing-rules".into(),
            body: json!({"name": "r3", "description": long(1001), "mode": "fallback",
                         "targets": [{"provider": "openai"}]}),
            field: "description",
            limit: "1000",
        },
    ];
    for case in cases {
        let reply = app
            .owner_call(case.method.clone(), &case.path, Some(case.body.clone()))
            .await;
        let what = format!("{} {} ({})", case.method, case.path, case.field);
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.body
        );
        let message = reply.body["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(case.field) && message.contains(case.limit),
            "{what}: the message must name the field and its limit: {message}"
        );
        assert!(message.len() < 400, "{what}: the message echoes the input");
    }
}

#[tokio::test]
async fn security_unknown_policy_errors_name_no_policies() {
    let app = TestApp::spawn().await;
    let (_, secret) = app.new_key("policied").await;
    app.patch_workspace(
        json!({"rate_limit_policies": {"enterprise-secret-tier": [{"limit": 5, "window": "1m"}]}}),
    )
    .await;

    let reply = Reply::send(
        app.client
            .post(format!("{}/v1/keys/verify", app.base))
            .bearer_auth(&app.owner_token)
            .header("keygate-ratelimit-policy", "nope")
            .json(&json!({"key": secret})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert!(
        !reply.body.to_string().contains("enterprise-secret-tier"),
        "{}",
        reply.body
    );
}

/// Gateway mode, where the one who reads an error is an end customer: a legacy key two
/// workspaces imported is picked by the route's workspaces (and refused where it would be a
/// guess), and an unknown policy header is answered without the workspace's policy names.
#[tokio::test]
async fn security_gateway_picks_legacy_keys_by_route_and_names_no_policies() {
    let (echo, echo_url) = Echo::start().await;
    let app = TestApp::spawn().await;
    let ws = app.workspace_id.clone();
    let (other_ws, other_token) = app.second_workspace().await;
    let shared = "shared-legacy-key-for-the-gateway-0123";
    for token in [app.owner_token.as_str(), other_token.as_str()] {
        app.create(
            "/v1/keys/import",
            token,
            json!({"name": "legacy", "key": shared}),
        )
        .await;
    }
    app.patch_workspace(
        json!({"rate_limit_policies": {"enterprise-secret-tier": [{"limit": 5, "window": "1m"}]}}),
    )
    .await;
    let (_, native) = app.new_key("native").await;
    let text = format!(
        r#"
[[proxy]]
prefix = "/only-ours"
upstream = "{echo_url}/base"
workspaces = ["{ws}"]

[[proxy]]
prefix = "/only-theirs"
upstream = "{echo_url}/base"
workspaces = ["{other_ws}"]

[[proxy]]
prefix = "/everyone"
upstream = "{echo_url}/base"
workspaces = "*"
"#
    );
    let config =
        keygate_server::gateway::GatewayConfig::parse(&text, &|_| None).expect("gateway config");
    let app = app.restart_with_gateway(config).await;
    let get = |path: &str, key: &str| {
        let request = app
            .client
            .get(format!("{}{path}", app.base))
            .bearer_auth(key);
        async move { Reply::send(request).await }
    };

    for (path, expected) in [("/only-ours/x", &ws), ("/only-theirs/x", &other_ws)] {
        let reply = get(path, shared).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        let seen = echo.last();
        let workspace = seen
            .headers
            .get("keygate-workspace-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(workspace, expected.as_str(), "{path}");
    }
    let before = echo.count();
    let ambiguous = get("/everyone/x", shared).await;
    assert_eq!(
        ambiguous.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        ambiguous.body
    );
    assert_eq!(echo.count(), before, "an ambiguous key reaches no upstream");

    let reply = Reply::send(
        app.client
            .get(format!("{}/only-ours/x", app.base))
            .bearer_auth(&native)
            .header("keygate-ratelimit-policy", "nope"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert!(
        !reply.body.to_string().contains("enterprise-secret-tier"),
        "{}",
        reply.body
    );
}
