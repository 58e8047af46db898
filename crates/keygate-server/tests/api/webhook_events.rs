//! Events no member's change causes, end to end: `key.expiring`, `limit.threshold` and
//! `credits.low` reach a real receiver once each, signed so that the Standard Webhooks package
//! from PyPI verifies them; deliveries wait for a receiver that is down; an endpoint whose
//! every attempt fails for the window is disabled, with its audit row. On SQLite and on
//! PostgreSQL (`scripts/test` runs both when `standardwebhooks` imports and PostgreSQL
//! answers).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use axum::Router;
use keygate_core::Clock;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::backends::Served;
use crate::helpers::{Spawn, TestApp};

on_servers!(
    #[ignore = "needs the standardwebhooks Python package: python3 -m pip install standardwebhooks (scripts/test runs this when it imports)"]
    sqlite_standardwebhooks: crate::webhook_events::on_sqlite,
    #[ignore = "needs PostgreSQL (KEYGATE_TEST_DATABASE_URL) and the standardwebhooks Python package (scripts/test runs this when both are there)"]
    postgres_standardwebhooks: crate::webhook_events::on_postgres
    => [
        a_key_expiring_is_announced_once_per_notice,
        a_token_budget_is_announced_at_80_and_100_percent_once_per_period,
        an_identitys_budget_is_announced_once_for_all_its_keys,
        credits_low_is_announced_once_per_balance,
        deliveries_wait_for_a_receiver_that_is_down,
        an_endpoint_failing_for_the_window_is_disabled_with_an_audit_row,
    ]
);

/// Webhooks to loopback, expiring keys looked for every 100 ms, endpoints disabled after
/// 20 s of failures (on the server's clock, which the tests move).
fn options() -> Spawn {
    Spawn {
        webhooks_allow_loopback: true,
        webhooks_expiry_scan_every: Some(Duration::from_millis(100)),
        webhooks_disable_after: Some(Duration::from_secs(20)),
        ..Spawn::default()
    }
}

pub async fn on_sqlite() -> Served {
    Served::sqlite_with(options()).await
}

pub async fn on_postgres() -> Served {
    Served::postgres_with(options()).await
}

/// What the receiver got: the `webhook-*` headers and the body of each request, in order.
type Received = Arc<Mutex<Vec<(BTreeMap<String, String>, String)>>>;

/// A webhook receiver on a loopback port that answers every request with `status`, and can be
/// stopped and started again on the same port.
struct Receiver {
    address: SocketAddr,
    received: Received,
    status: Arc<AtomicU16>,
    running: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl Receiver {
    async fn start(status: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut receiver = Receiver {
            address: listener.local_addr().expect("address"),
            received: Received::default(),
            status: Arc::new(AtomicU16::new(status)),
            running: None,
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let log = self.received.clone();
        let status = self.status.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let log = log.clone();
                let status = status.load(Ordering::SeqCst);
                async move {
                    let headers = headers
                        .iter()
                        .filter(|(k, _)| k.as_str().starts_with("webhook-"))
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    log.lock().expect("log").push((headers, body));
                    AxumStatus::from_u16(status).unwrap_or(AxumStatus::NO_CONTENT)
                }
            }),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        self.running = Some((stop, task));
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    /// Stops answering: connections to the port are refused from now on.
    async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.abort();
            let _ = task.await;
        }
    }

    /// Answers again, on the same port.
    async fn start_again(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.address)
            .await
            .expect("bind the same port again");
        self.serve(listener);
    }

    fn got(&self) -> Vec<(BTreeMap<String, String>, String)> {
        self.received.lock().expect("log").clone()
    }

    /// The bodies received, as JSON.
    fn bodies(&self) -> Vec<Value> {
        self.got()
            .iter()
            .map(|(_, body)| serde_json::from_str(body).expect("a JSON body"))
            .collect()
    }

    async fn wait_for(&self, count: usize) {
        eventually(&format!("{count} requests at the receiver"), || async {
            self.got().len() >= count
        })
        .await;
    }

    /// Waits long enough for anything more to arrive (several scans and dispatcher rounds),
    /// then says how many requests came in all.
    async fn settled_count(&self) -> usize {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        self.got().len()
    }
}

/// Polls `check` for up to 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waited 15 s for {what}");
}

/// An endpoint for `url` subscribed to `types`; returns its id and signing secret.
async fn endpoint(app: &TestApp, url: &str, types: Value) -> (String, String) {
    let created = app
        .owner_post("/v1/webhooks", json!({"url": url, "event_types": types}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    (
        created.body["id"].as_str().expect("id").to_owned(),
        created.body["secret"].as_str().expect("secret").to_owned(),
    )
}

async fn delivery_log(app: &TestApp, endpoint: &str) -> Vec<Value> {
    let log = app
        .owner_get(&format!("/v1/webhooks/{endpoint}/deliveries"))
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    log.body["items"].as_array().expect("items").clone()
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn a_key_expiring_is_announced_once_per_notice(app: &TestApp) {
    let receiver = Receiver::start(204).await;
    let (_, secret) = endpoint(app, &receiver.url(), json!(["key.expiring"])).await;
    let now = app.clock.now();
    let in_six_days = app
        .create_key(
            json!({"name": "six-days", "expires_at": rfc3339(now + chrono::Duration::days(6))}),
        )
        .await;
    let in_twenty_hours = app
        .create_key(json!({"name": "twenty-hours", "expires_at": rfc3339(now + chrono::Duration::hours(20))}))
        .await;
    app.create_key(json!({"name": "twenty-days", "expires_in": "20d"}))
        .await;

    receiver.wait_for(2).await;
    assert_eq!(
        receiver.settled_count().await,
        2,
        "one notice each, not again on later scans"
    );
    let bodies = receiver.bodies();
    let by_key = |key: &Value| {
        bodies
            .iter()
            .find(|b| b["data"]["key_id"] == key["id"])
            .cloned()
            .unwrap_or_else(|| panic!("no notice for {key}: {bodies:?}"))
    };
    let week = by_key(&in_six_days);
    assert_eq!(week["type"], "key.expiring");
    assert_eq!(week["data"]["notice"], "7d");
    assert_eq!(week["data"]["days_left"], 6);
    assert_eq!(week["data"]["name"], "six-days");
    assert_eq!(week["data"]["display"], in_six_days["display"]);
    let day = by_key(&in_twenty_hours);
    assert_eq!(day["data"]["notice"], "1d", "the nearer notice only");
    assert_eq!(day["data"]["days_left"], 1);
    for (key, body) in [(&in_six_days, &week), (&in_twenty_hours, &day)] {
        let secret = key["secret"].as_str().expect("secret");
        assert!(!body.to_string().contains(secret), "never the key's secret");
    }

    // A new expiry earns its own notice.
    let id = in_six_days["id"].as_str().expect("id");
    let moved = app
        .owner_patch(
            &format!("/v1/keys/{id}"),
            json!({"expires_at": rfc3339(now + chrono::Duration::days(3))}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    // (`key.updated` is not subscribed: only the new notice comes.)
    receiver.wait_for(3).await;
    assert_eq!(receiver.settled_count().await, 3);
    let again = receiver.bodies().remove(2);
    assert_eq!(
        (
            again["data"]["key_id"].as_str(),
            again["data"]["days_left"].as_i64()
        ),
        (Some(id), Some(3))
    );
    assert_verified(&secret, &receiver.got());
}

async fn a_token_budget_is_announced_at_80_and_100_percent_once_per_period(app: &TestApp) {
    let receiver = Receiver::start(204).await;
    let (_, secret) = endpoint(app, &receiver.url(), json!(["limit.threshold"])).await;
    let key = app
        .create_key(json!({"name": "budgeted", "limits": {"token_limit": {"limit": 1000, "reset": "monthly"}}}))
        .await;
    let (key_id, plain) = (
        key["id"].as_str().expect("id"),
        key["secret"].as_str().expect("secret"),
    );
    let spend = |tokens: u64| async move {
        let verdict = app.verify(json!({"key": plain, "tokens": tokens})).await;
        assert_eq!(verdict["code"], "valid", "{verdict}");
    };
    spend(500).await;
    assert_eq!(receiver.settled_count().await, 0, "50% is nothing to tell");
    spend(350).await; // 85%
    receiver.wait_for(1).await;
    spend(10).await; // 86%: the same crossing
    spend(10).await;
    assert_eq!(receiver.settled_count().await, 1);
    let eighty = receiver.bodies().remove(0);
    assert_eq!(eighty["type"], "limit.threshold");
    let data = &eighty["data"];
    assert_eq!(data["threshold"], 80);
    assert_eq!(data["scope"], "key");
    assert_eq!(data["kind"], "tokens");
    assert_eq!(data["key_id"], key_id);
    assert_eq!(
        (data["limit"].as_i64(), data["used"].as_i64()),
        (Some(1000), Some(850))
    );
    assert!(
        !eighty.to_string().contains(plain),
        "never the key's secret"
    );

    // A usage report takes it to 100%: announced once, off the request.
    let reported = app
        .owner_post("/v1/usage", json!({"key_id": key_id, "tokens": 130}))
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.body);
    receiver.wait_for(2).await;
    assert_eq!(receiver.settled_count().await, 2);
    let full = receiver.bodies().remove(1);
    assert_eq!(full["data"]["threshold"], 100);
    assert_eq!(full["data"]["period_start"], eighty["data"]["period_start"]);
    assert_verified(&secret, &receiver.got());

    // Next month is a new period: 80% is announced again.
    app.clock.advance_millis(32 * 86_400_000);
    spend(850).await;
    receiver.wait_for(3).await;
    assert_eq!(receiver.settled_count().await, 3);
    let next = receiver.bodies().remove(2);
    assert_eq!(next["data"]["threshold"], 80);
    assert_ne!(next["data"]["period_start"], eighty["data"]["period_start"]);
}

/// An identity's budget spent by two of its keys crosses 80% once: one event, of scope
/// `identity`, naming the identity, whichever key took it over.
async fn an_identitys_budget_is_announced_once_for_all_its_keys(app: &TestApp) {
    let receiver = Receiver::start(204).await;
    let (_, secret) = endpoint(app, &receiver.url(), json!(["limit.threshold"])).await;
    let identity = app
        .owner_post(
            "/v1/identities",
            json!({"external_id": "cus_budget", "limits": {"token_limit": {"limit": 1000, "reset": "monthly"}}}),
        )
        .await;
    assert_eq!(identity.status, StatusCode::CREATED, "{}", identity.body);
    let identity_id = identity.body["id"].as_str().expect("id").to_owned();
    let mut plains = Vec::new();
    for name in ["customer a", "customer b"] {
        let key = app
            .create_key(json!({"name": name, "identity_id": identity_id}))
            .await;
        plains.push(key["secret"].as_str().expect("secret").to_owned());
    }
    for (plain, tokens) in [(&plains[0], 500), (&plains[1], 350), (&plains[0], 10)] {
        let verdict = app.verify(json!({"key": plain, "tokens": tokens})).await;
        assert_eq!(verdict["code"], "valid", "{verdict}");
    }
    receiver.wait_for(1).await;
    assert_eq!(receiver.settled_count().await, 1);
    let event = receiver.bodies().remove(0);
    assert_eq!(event["data"]["scope"], "identity", "{event}");
    assert_eq!(
        event["data"]["identity_id"],
        identity_id.as_str(),
        "{event}"
    );
    assert_eq!(event["data"]["threshold"], 80);
    assert_eq!(event["data"]["used"], 850);
    assert_verified(&secret, &receiver.got());
}

async fn credits_low_is_announced_once_per_balance(app: &TestApp) {
    // The threshold is money: never negative, and `null` turns it off.
    for bad in [json!("-1"), json!(-1), json!("1.0000001"), json!("lots")] {
        app.owner_patch("/v1/workspace", json!({"credits_low_threshold": bad}))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    }
    let off = app
        .patch_workspace(json!({"credits_low_threshold": null}))
        .await;
    assert_eq!(off["credits_low_threshold"], Value::Null);

    let receiver = Receiver::start(204).await;
    let (_, secret) = endpoint(app, &receiver.url(), json!(["credits.low"])).await;
    let set = app
        .patch_workspace(json!({"credit_balance": "10.00", "credits_low_threshold": "2.00"}))
        .await;
    assert_eq!(set["credits_low_threshold"], "2.00");
    let (_, plain) = app.new_key("spender").await;
    let spend = |cost: &'static str| {
        let plain = plain.clone();
        async move {
            let verdict = app.verify(json!({"key": plain, "cost": cost})).await;
            assert_eq!(verdict["code"], "valid", "{verdict}");
        }
    };
    spend("7.00").await; // 3.00 left
    assert_eq!(receiver.settled_count().await, 0);
    spend("1.50").await; // 1.50 left
    receiver.wait_for(1).await;
    spend("0.50").await; // 1.00 left: still low, not again
    assert_eq!(receiver.settled_count().await, 1);
    let low = receiver.bodies().remove(0);
    assert_eq!(low["type"], "credits.low");
    assert_eq!(low["data"]["credit_balance"], "10.00");
    assert_eq!(low["data"]["remaining"], "1.50");
    assert_eq!(low["data"]["threshold"], "2.00");

    // A raised balance re-arms it.
    app.patch_workspace(json!({"credit_balance": "20.00"}))
        .await; // 11.00 left
    spend("1.00").await;
    assert_eq!(receiver.settled_count().await, 1);
    spend("9.50").await; // 0.50 left
    receiver.wait_for(2).await;
    assert_eq!(receiver.settled_count().await, 2);
    assert_eq!(receiver.bodies()[1]["data"]["credit_balance"], "20.00");
    assert_verified(&secret, &receiver.got());
}

async fn deliveries_wait_for_a_receiver_that_is_down(app: &TestApp) {
    let mut receiver = Receiver::start(204).await;
    let (id, secret) = endpoint(app, &receiver.url(), json!([])).await;
    receiver.stop().await;

    let (first, _) = app.new_key("while-down-1").await;
    app.new_key("while-down-2").await;
    app.key_action(&first, "revoke").await;
    // Every event meets a closed port once and waits for its retry.
    eventually("a failed first attempt of each event", || async {
        let log = delivery_log(app, &id).await;
        log.len() == 3
            && log
                .iter()
                .all(|d| d["attempts"] == 1 && d["state"] == "pending")
    })
    .await;
    assert!(receiver.got().is_empty());

    receiver.start_again().await;
    // The retries are due 5 s (±20%) later on the server's clock.
    app.clock.advance_millis(7_000);
    receiver.wait_for(3).await;
    assert_eq!(
        receiver.settled_count().await,
        3,
        "each event delivered once"
    );
    let log = delivery_log(app, &id).await;
    let mut logged: Vec<&str> = log.iter().filter_map(|d| d["event_id"].as_str()).collect();
    let got = receiver.got();
    let mut delivered: Vec<&str> = got.iter().map(|(h, _)| h["webhook-id"].as_str()).collect();
    logged.sort_unstable();
    delivered.sort_unstable();
    assert_eq!(
        delivered, logged,
        "the retry carries the event's webhook-id"
    );
    for d in &log {
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_u64()),
            (Some("delivered"), Some(2)),
            "{d}"
        );
    }
    let mut types: Vec<String> = receiver
        .bodies()
        .iter()
        .map(|b| b["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["key.created", "key.created", "key.revoked"]);
    assert_verified(&secret, &got);
}

async fn an_endpoint_failing_for_the_window_is_disabled_with_an_audit_row(app: &TestApp) {
    let receiver = Receiver::start(503).await;
    let (id, secret) = endpoint(app, &receiver.url(), json!(["key.created"])).await;
    app.new_key("never-heard").await;
    receiver.wait_for(1).await;
    // Failing for 7 s of a 20 s window: still enabled.
    app.clock.advance_millis(7_000);
    receiver.wait_for(2).await;
    let shown = app.owner_get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(shown.body["enabled"], true, "{}", shown.body);
    assert_eq!(shown.body["disabled_reason"], Value::Null);
    // The next retry is 30 s (±20%) later: failing for more than the window by then.
    app.clock.advance_millis(40_000);
    receiver.wait_for(3).await;
    eventually("the endpoint disabled", || async {
        app.owner_get(&format!("/v1/webhooks/{id}")).await.body["enabled"] == false
    })
    .await;
    let shown = app.owner_get(&format!("/v1/webhooks/{id}")).await;
    let reason = shown.body["disabled_reason"].as_str().expect("a reason");
    assert!(reason.contains("every delivery attempt failed"), "{reason}");
    assert!(reason.contains("503"), "the last error is told: {reason}");
    let audit = app.owner_get("/v1/audit?limit=50").await;
    let rows: Vec<&Value> = audit.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("rows: {}", audit.body))
        .iter()
        .filter(|r| r["action"] == "webhook.disabled")
        .collect();
    assert_eq!(rows.len(), 1, "one audit row: {}", audit.body);
    assert_eq!(rows[0]["actor"], "system");
    assert_eq!(rows[0]["target_id"], id.as_str());
    // Nothing more is sent to it.
    app.clock.advance_millis(300_000);
    assert_eq!(receiver.settled_count().await, 3);
    // Enabled again by hand: the reason goes.
    let enabled = app
        .owner_patch(&format!("/v1/webhooks/{id}"), json!({"enabled": true}))
        .await;
    assert_eq!(enabled.body["enabled"], true, "{}", enabled.body);
    assert_eq!(enabled.body["disabled_reason"], Value::Null);
    // The first two attempts carried real timestamps; the standard verifier accepts them.
    assert_verified(&secret, &receiver.got()[..2]);
}

/// Runs the `standardwebhooks` package (PyPI) over the deliveries and a tampered copy of the
/// first; the secret goes by the environment, never the command line.
fn assert_verified(secret: &str, got: &[(BTreeMap<String, String>, String)]) {
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
    wh.verify(tampered["body"] + " ", tampered["headers"])
    print("accepted a tampered body")
except WebhookVerificationError:
    print(f"verified {len(deliveries)}, refused the tampered copy")
"#;
    let deliveries: Vec<Value> = got
        .iter()
        .map(|(headers, body)| json!({"headers": headers, "body": body}))
        .collect();
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
        .write_all(Value::Array(deliveries).to_string().as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("python3 ran");
    assert!(
        output.status.success(),
        "standardwebhooks refused a delivery: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("verified {}, refused the tampered copy", got.len())
    );
}
