//! The audit trail: every management change leaves exactly one row, with who, what, the
//! before/after of what changed, and from where; the trail filters and pages; failed
//! authentication attempts are aggregated, never hold a secret, and stay in their workspace.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp};

both_backends!(
    each_management_change_leaves_exactly_one_audit_row,
    failed_authentication_attempts_are_counted_not_logged_one_by_one,
);

const AGENT: &str = "audit-test/1.0";

/// A change to make: method, path, body, the action it must leave, and the field whose
/// before/after the row must show.
type Step = (
    Method,
    String,
    Option<Value>,
    &'static str,
    Option<&'static str>,
);

/// A management call with a recognisable user agent.
async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(&app.owner_token)
        .header("user-agent", AGENT);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let reply = Reply::send(request).await;
    assert!(reply.status.is_success(), "{path}: {}", reply.body);
    reply
}

/// Every audit row of the workspace, newest first, through every page.
async fn trail(app: &TestApp, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/audit?limit=3{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.owner_get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        items.extend(page.body["items"].as_array().cloned().unwrap_or_default());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

async fn each_management_change_leaves_exactly_one_audit_row(app: &TestApp) {
    let me = app.owner_get("/v1/me").await;
    let owner_id = me.body["member"]["id"]
        .as_str()
        .or_else(|| me.body["id"].as_str())
        .expect("member id")
        .to_owned();
    let mut seen = trail(app, "").await.len();

    // (what to do, the action it must leave, the field whose before/after must show)
    let key = call(
        app,
        Method::POST,
        "/v1/keys",
        Some(json!({"name": "audited"})),
    )
    .await;
    let id = key.body["id"].as_str().expect("id").to_owned();
    let mut checks = vec![(key, "key.create", id.clone(), Some("name"))];
    let steps: Vec<Step> = vec![
        (
            Method::PATCH,
            format!("/v1/keys/{id}"),
            Some(json!({"name": "renamed"})),
            "key.update",
            Some("name"),
        ),
        (
            Method::POST,
            format!("/v1/keys/{id}/disable"),
            Some(json!({})),
            "key.disable",
            Some("status"),
        ),
        (
            Method::POST,
            format!("/v1/keys/{id}/enable"),
            Some(json!({})),
            "key.enable",
            Some("status"),
        ),
        (
            Method::POST,
            format!("/v1/keys/{id}/regenerate"),
            Some(json!({})),
            "key.regenerate",
            None,
        ),
        (
            Method::POST,
            format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace": "1h"})),
            "key.rotate",
            None,
        ),
        (
            Method::POST,
            format!("/v1/keys/{id}/revoke"),
            Some(json!({})),
            "key.revoke",
            Some("status"),
        ),
        (
            Method::DELETE,
            format!("/v1/keys/{id}"),
            None,
            "key.delete",
            Some("name"),
        ),
    ];
    for (method, path, body, action, field) in steps {
        let reply = call(app, method, &path, body).await;
        checks.push((reply, action, id.clone(), field));
    }
    let imported = call(
        app,
        Method::POST,
        "/v1/keys/import",
        Some(json!({"name": "legacy", "key": "legacy-audit-secret-0123456789"})),
    )
    .await;
    let imported_id = imported.body["id"].as_str().expect("id").to_owned();
    checks.push((imported, "key.import", imported_id, Some("name")));
    let member = call(
        app,
        Method::POST,
        "/v1/members",
        Some(json!({"name": "temp", "role": "viewer"})),
    )
    .await;
    let member_id = member.body["id"]
        .as_str()
        .or_else(|| member.body["member"]["id"].as_str())
        .expect("member id")
        .to_owned();
    checks.push((member, "member.create", member_id.clone(), None));
    let deleted = call(
        app,
        Method::DELETE,
        &format!("/v1/members/{member_id}"),
        None,
    )
    .await;
    checks.push((deleted, "member.delete", member_id, None));
    let project = call(
        app,
        Method::POST,
        "/v1/projects",
        Some(json!({"name": "audited"})),
    )
    .await;
    let project_id = project.body["id"].as_str().expect("id").to_owned();
    checks.push((project, "project.create", project_id, None));
    let workspace = call(
        app,
        Method::PATCH,
        "/v1/workspace",
        Some(json!({"single_active_key": true})),
    )
    .await;
    checks.push((
        workspace,
        "workspace.update",
        app.workspace_id.clone(),
        Some("single_active_key"),
    ));

    let all = trail(app, "").await;
    assert_eq!(
        all.len() - seen,
        checks.len(),
        "one row per change, no more: {all:#?}"
    );
    seen = all.len();
    for (reply, action, target, field) in &checks {
        let request_id = reply
            .headers
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .expect("request-id");
        let rows: Vec<&Value> = all
            .iter()
            .filter(|r| r["request_id"] == request_id)
            .collect();
        assert_eq!(rows.len(), 1, "{action}: {rows:#?}");
        let row = rows[0];
        assert_eq!(row["action"], *action);
        assert_eq!(row["target_id"], target.as_str(), "{action}");
        assert_eq!(row["actor"], owner_id.as_str(), "{action}");
        assert_eq!(row["source_ip"], "127.0.0.1", "{action}");
        assert_eq!(row["user_agent"], AGENT, "{action}");
        assert!(row["at"].is_string(), "{action}");
        if let Some(field) = field {
            assert!(
                row["changes"].get(*field).is_some(),
                "{action} must show {field}: {}",
                row["changes"]
            );
        }
        let text = row.to_string();
        assert!(
            !text.contains("legacy-audit-secret"),
            "a secret in the trail"
        );
        if let Some(secret) = reply.body["secret"].as_str() {
            assert!(!text.contains(secret), "a secret in the trail");
        }
    }
    let update = all
        .iter()
        .find(|r| r["action"] == "key.update")
        .expect("update row");
    assert_eq!(
        update["changes"]["name"],
        json!({"before": "audited", "after": "renamed"})
    );

    // Filters: by key, by action, by actor, by time; the cursor walks them all.
    let of_key = trail(app, &format!("&key_id={id}")).await;
    assert_eq!(of_key.len(), 8, "create … delete of the key");
    // (The test clock stands still, so every row has the same time: no order to check.)
    assert!(of_key.iter().all(|r| r["target_id"] == id.as_str()));
    assert_eq!(trail(app, "&action=key.rotate").await.len(), 1);
    assert_eq!(
        trail(app, &format!("&actor={owner_id}")).await.len(),
        seen - 1
    );
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let since_future = trail(app, &format!("&since={}", urlencode(&future))).await;
    assert!(since_future.is_empty());
    let until_future = trail(app, &format!("&until={}", urlencode(&future))).await;
    assert_eq!(until_future.len(), seen);
    app.owner_get("/v1/audit?cursor=nope")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    // Any member reads it; another workspace sees none of it.
    let viewer = app.member_token("viewer").await;
    assert_eq!(app.get("/v1/audit", &viewer).await.status, StatusCode::OK);
    let (_, other) = app.second_workspace().await;
    let theirs = app.get(&format!("/v1/audit?key_id={id}"), &other).await;
    assert_eq!(theirs.body["items"], json!([]));
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

async fn failed_authentication_attempts_are_counted_not_logged_one_by_one(app: &TestApp) {
    let (id, secret) = app.new_key("soon revoked").await;
    // The same invented key from one address, many times; a mistyped one; none at all.
    let invented = "kg_live_0000000000000000000000000000x";
    for _ in 0..25 {
        app.verify(json!({"key": invented, "source_ip": "203.0.113.50"}))
            .await;
    }
    let mistyped = format!("{secret}x");
    app.verify(json!({"key": mistyped, "source_ip": "203.0.113.51"}))
        .await;
    app.verify(json!({})).await;
    app.key_action(&id, "revoke").await;
    for _ in 0..3 {
        app.verify(json!({"key": secret, "source_ip": "2001:db8::7"}))
            .await;
    }
    app.state.usage.flush().await;

    let failures = app
        .owner_get("/v1/audit?action=auth.failed&limit=100")
        .await;
    assert_eq!(failures.status, StatusCode::OK, "{}", failures.body);
    let items = failures.body["items"].as_array().expect("items");
    let attempts: u64 = items.iter().filter_map(|i| i["attempts"].as_u64()).sum();
    assert_eq!(attempts, 25 + 1 + 1 + 3, "{items:#?}");
    let flood = items
        .iter()
        .find(|i| i["source_ip"] == "203.0.113.50")
        .expect("the flood");
    assert_eq!(flood["attempts"], 25, "one row with a count, not 25 rows");
    assert_eq!(flood["action"], "auth.failed");
    let revoked = items
        .iter()
        .find(|i| i["code"] == "revoked")
        .expect("the revoked key");
    assert_eq!(revoked["attempts"], 3);
    assert_eq!(revoked["source_ip"], "2001:db8::7");
    let missing = items
        .iter()
        .find(|i| i["code"] == "missing_api_key")
        .expect("no key");
    assert_eq!(
        missing["source_ip"], "127.0.0.1",
        "without source_ip, the caller's address"
    );
    let text = failures.body.to_string();
    for secret in [secret.as_str(), mistyped.as_str(), invented] {
        let body = &secret[secret.len() - 20..];
        assert!(!text.contains(body), "part of a presented key in the trail");
    }

    // Filters combine as AND: failed attempts have no key id, so none match.
    let none = app
        .owner_get("/v1/audit?action=auth.failed&key_id=key_x")
        .await;
    assert_eq!(none.status, StatusCode::OK, "{}", none.body);
    assert_eq!(none.body["items"], json!([]));
    app.owner_post(
        "/v1/keys/verify",
        json!({"key": invented, "source_ip": "not an address"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let (_, other) = app.second_workspace().await;
    let theirs = app.get("/v1/audit?action=auth.failed", &other).await;
    assert_eq!(theirs.body["items"], json!([]));
}
