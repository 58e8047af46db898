//! Webhooks end to end: endpoints managed by writers and refused when they point inward
//! (SSRF), and events that reach a real receiver, retried after a failure with the same id,
//! signed so that the Standard Webhooks package from PyPI verifies them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use axum::Router;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{Spawn, TestApp};

both_backends!(endpoints_are_managed_by_writers_and_never_point_inward);

/// On both stores: CRUD by writers, reads by viewers, 404 across workspaces, SSRF refusals,
/// audit rows without the secret, and a change queueing a delivery in its transaction.
async fn endpoints_are_managed_by_writers_and_never_point_inward(app: &TestApp) {
    let created = app
        .owner_post(
            "/v1/webhooks",
            json!({"url": "https://hooks.example.com/keygate", "event_types": ["key.revoked"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert!(created.body["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("whsec_")));
    let shown = app.owner_get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(shown.body["event_types"], json!(["key.revoked"]));
    assert!(shown.body.get("secret").is_none(), "shown once only");

    for url in [
        "http://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://localhost/x",
        "https://10.0.0.8/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/x",
        "https://user:pw@hooks.example.com/x",
        "not a url",
    ] {
        let reply = app.owner_post("/v1/webhooks", json!({ "url": url })).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{url}: {}",
            reply.body
        );
    }
    let many: Vec<&str> = std::iter::repeat_n("key.revoked", 21).collect();
    app.owner_post(
        "/v1/webhooks",
        json!({"url": "https://hooks.example.com/x", "event_types": many}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let viewer = app.member_token("viewer").await;
    assert_eq!(
        app.get("/v1/webhooks", &viewer).await.status,
        StatusCode::OK
    );
    app.post(
        "/v1/webhooks",
        &viewer,
        json!({"url": "https://hooks.example.com/y"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "insufficient_role");
    let (_, other_owner) = app.second_workspace().await;
    app.get(&format!("/v1/webhooks/{id}"), &other_owner)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    // A subscribed change queues one delivery, in the change's own transaction.
    let (key_id, _) = app.new_key("watched").await;
    app.key_action(&key_id, "revoke").await;
    let log = app
        .owner_get(&format!("/v1/webhooks/{id}/deliveries"))
        .await;
    let items = log.body["items"].as_array().expect("items").clone();
    assert_eq!(
        items.len(),
        1,
        "only key.revoked is subscribed: {}",
        log.body
    );
    assert_eq!(items[0]["event_type"], "key.revoked");
    // It can be sent again now; a delivery of nothing is 404.
    let delivery = items[0]["id"].as_str().expect("id");
    let again = app
        .owner_post(
            &format!("/v1/webhooks/{id}/deliveries/{delivery}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    app.owner_post(
        &format!("/v1/webhooks/{id}/deliveries/evt_nothing:{id}/redeliver"),
        json!({}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");

    let patched = app
        .owner_patch(&format!("/v1/webhooks/{id}"), json!({"enabled": false}))
        .await;
    assert_eq!(patched.body["enabled"], false, "{}", patched.body);
    let deleted = app.owner_delete(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let audit = app.owner_get("/v1/audit?limit=50").await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in ["webhook.create", "webhook.update", "webhook.delete"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert!(
        !audit.body.to_string().contains("whsec_"),
        "no secret in the audit trail"
    );
}

/// What the receiver got: headers and body of each request, in order.
type Received = Arc<Mutex<Vec<(BTreeMap<String, String>, String)>>>;

/// A webhook receiver on a random loopback port that answers 503 to its first `failures`
/// requests and 204 after.
async fn receiver(failures: usize) -> (String, Received) {
    let received: Received = Arc::default();
    let seen = Arc::new(AtomicUsize::new(0));
    let log = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                let headers = headers
                    .iter()
                    .filter(|(k, _)| k.as_str().starts_with("webhook-"))
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect();
                log.lock().expect("log").push((headers, body));
                if n < failures {
                    AxumStatus::SERVICE_UNAVAILABLE
                } else {
                    AxumStatus::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), received)
}

async fn wait_for(received: &Received, count: usize) {
    for _ in 0..100 {
        if received.lock().expect("log").len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the receiver got {} requests, not {count}",
        received.lock().expect("log").len()
    );
}

#[tokio::test]
#[ignore = "needs the standardwebhooks Python package: python3 -m pip install standardwebhooks (scripts/test runs this when it imports)"]
async fn events_reach_the_receiver_retried_with_one_id_and_verified_by_standardwebhooks() {
    let app = TestApp::spawn_with(Spawn {
        webhooks_allow_loopback: true,
        ..Spawn::default()
    })
    .await;
    let (url, received) = receiver(1).await;
    let created = app
        .owner_post(
            "/v1/webhooks",
            json!({"url": url, "event_types": ["key.created", "key.revoked"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let endpoint = created.body["id"].as_str().expect("id").to_owned();
    let secret = created.body["secret"].as_str().expect("secret").to_owned();

    let (key_id, _) = app.new_key("watched").await;
    app.key_action(&key_id, "disable").await; // not subscribed
    app.key_action(&key_id, "revoke").await;

    // The first attempt meets a 503; the retry is due 5 s (±20%) later on the server's clock.
    wait_for(&received, 2).await;
    app.clock.advance_millis(7_000);
    wait_for(&received, 3).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = received.lock().expect("log").clone();
    assert_eq!(got.len(), 3, "{got:?}");
    let types: Vec<String> = got
        .iter()
        .map(|(_, body)| {
            serde_json::from_str::<Value>(body).expect("json")["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    // The first attempt (of whichever event went first) met the 503 and was sent again.
    let created = types.iter().filter(|t| *t == "key.created").count();
    let revoked = types.iter().filter(|t| *t == "key.revoked").count();
    assert!(
        (created, revoked) == (2, 1) || (created, revoked) == (1, 2),
        "each event once, the failed one twice: {types:?}"
    );
    let retried = if created == 2 {
        "key.created"
    } else {
        "key.revoked"
    };
    let ids: Vec<&str> = got
        .iter()
        .filter(|(_, body)| body.contains(retried))
        .map(|(h, _)| h["webhook-id"].as_str())
        .collect();
    assert_eq!(ids[0], ids[1], "a retry carries the same webhook-id");

    // An outside verifier accepts every delivery, and refuses a tampered one.
    let deliveries: Vec<Value> = got
        .iter()
        .map(|(headers, body)| json!({"headers": headers, "body": body}))
        .collect();
    let verified = verify_with_standardwebhooks(&secret, &deliveries);
    assert_eq!(verified, "verified 3, refused the tampered copy");

    let log = app
        .owner_get(&format!("/v1/webhooks/{endpoint}/deliveries"))
        .await;
    let items = log.body["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 2, "{}", log.body);
    for item in &items {
        assert_eq!(item["state"], "delivered", "{item}");
        assert_eq!(item["last_status"], 204);
    }
    assert!(items.iter().any(|d| d["attempts"] == 2));
}

/// Runs the `standardwebhooks` package (PyPI) over the deliveries; the secret goes by the
/// environment, never the command line.
fn verify_with_standardwebhooks(secret: &str, deliveries: &[Value]) -> String {
    use std::io::Write;
    let script = r#"
import json, os, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
wh = Webhook(os.environ["WEBHOOK_SECRET"])
deliveries = json.load(sys.stdin)
for d in deliveries:
    wh.verify(d["body"], d["headers"])
tampered = deliveries[0]
try:
    wh.verify(tampered["body"].replace("key.", "kex."), tampered["headers"])
    print("accepted a tampered body")
except WebhookVerificationError:
    print(f"verified {len(deliveries)}, refused the tampered copy")
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .env("WEBHOOK_SECRET", secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(Value::Array(deliveries.to_vec()).to_string().as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("python3 ran");
    assert!(
        output.status.success(),
        "standardwebhooks refused a delivery: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
