//! What survives the process: a real `keygate serve` on an SQLite file, killed with SIGKILL in
//! the middle of a stream of changes, keeps an audit row for every change it acknowledged
//! (change and row commit in one transaction); stopped with SIGTERM, it writes every buffered
//! usage event before exiting.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Server {
    child: Child,
    base: String,
    /// Printed on the first start only.
    token: Option<String>,
}

/// Starts `keygate serve` on `db` and reads its address (and owner token) from stdout.
async fn start(dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", dir.join("k.db").display()))
        .env_remove("KEYGATE_SECRET")
        .env_remove("KEYGATE_CONFIG_FILE")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start keygate serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut base = None;
    let mut token = None;
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(addr) = line.strip_prefix("Keygate is listening on ") {
                base = Some(addr.trim().to_owned());
            } else if let Some(t) = line.trim_start().strip_prefix("kgm_") {
                token = Some(format!("kgm_{}", t.trim()));
            }
            if line.starts_with("Use ") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("keygate serve printed its address in time");
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server {
        child,
        base: base.expect("listening line"),
        token,
    }
}

/// An acknowledged change: the request id the server answered with, and what it did.
#[derive(Debug, Clone)]
struct Acked {
    request_id: String,
    action: &'static str,
    target: String,
}

#[tokio::test]
async fn every_acknowledged_change_has_its_audit_row_after_a_kill_9() {
    let dir = tempfile::tempdir().expect("dir");
    let mut first = start(dir.path()).await;
    let token = first.token.clone().expect("owner token on the first start");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();

    // Four writers create and then rename keys as fast as the server answers.
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, base, token, acked) = (
            client.clone(),
            first.base.clone(),
            token.clone(),
            acked.clone(),
        );
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let Ok(reply) = client
                    .post(format!("{base}/v1/keys"))
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("w{w}-{n}")}))
                    .send()
                    .await
                else {
                    return;
                };
                let Some((request_id, body)) = acknowledged(reply).await else {
                    return;
                };
                let id = body["id"].as_str().unwrap_or_default().to_owned();
                lock(&acked).push(Acked {
                    request_id,
                    action: "key.create",
                    target: id.clone(),
                });
                let Ok(reply) = client
                    .patch(format!("{base}/v1/keys/{id}"))
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("w{w}-{n}-renamed")}))
                    .send()
                    .await
                else {
                    return;
                };
                let Some((request_id, _)) = acknowledged(reply).await else {
                    return;
                };
                lock(&acked).push(Acked {
                    request_id,
                    action: "key.update",
                    target: id,
                });
            }
        }));
    }
    // Mid-stream: wait until plenty were acknowledged, then SIGKILL.
    tokio::time::timeout(Duration::from_secs(60), async {
        while lock(&acked).len() < 80 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("changes were acknowledged");
    first.child.start_kill().expect("SIGKILL");
    first.child.wait().await.expect("killed");
    for writer in writers {
        let _ = writer.await;
    }
    let acked = lock(&acked).clone();

    let second = start(dir.path()).await;
    let mut trail: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "500".to_owned())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page: Value = client
            .get(format!("{}/v1/audit", second.base))
            .bearer_auth(&token)
            .query(&query)
            .send()
            .await
            .expect("audit")
            .json()
            .await
            .expect("json");
        trail.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    for change in &acked {
        let rows: Vec<&Value> = trail
            .iter()
            .filter(|r| r["request_id"] == change.request_id.as_str())
            .collect();
        assert_eq!(rows.len(), 1, "audit rows for {change:?}");
        assert_eq!(rows[0]["action"], change.action, "{change:?}");
        assert_eq!(rows[0]["target_id"], change.target.as_str(), "{change:?}");
    }
    eprintln!(
        "{} acknowledged changes, {} audit rows after the kill",
        acked.len(),
        trail.len()
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_writes_every_buffered_usage_event() {
    let dir = tempfile::tempdir().expect("dir");
    let mut first = start(dir.path()).await;
    let token = first.token.clone().expect("owner token");
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/v1/keys", first.base))
        .bearer_auth(&token)
        .json(&json!({"name": "metered"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let (id, secret) = (
        created["id"].as_str().expect("id").to_owned(),
        created["secret"].as_str().expect("secret").to_owned(),
    );
    let made = 30;
    for _ in 0..made {
        let reply = client
            .post(format!("{}/v1/keys/verify", first.base))
            .bearer_auth(&token)
            .json(&json!({"key": secret, "tokens": 3}))
            .send()
            .await
            .expect("verify");
        assert!(reply.status().is_success());
    }
    let pid = first.child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), first.child.wait())
        .await
        .expect("stopped in time")
        .expect("exit status");
    assert!(exit.success(), "graceful exit: {exit:?}");

    let second = start(dir.path()).await;
    let usage: Value = client
        .get(format!("{}/v1/keys/{id}/usage?days=1", second.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("usage")
        .json()
        .await
        .expect("json");
    assert_eq!(usage["totals"]["requests"], made, "{usage}");
    assert_eq!(usage["totals"]["tokens"], 3 * made, "{usage}");
}

/// The request id and body of a 2xx answer; `None` for anything else (the server died).
async fn acknowledged(reply: reqwest::Response) -> Option<(String, Value)> {
    if !reply.status().is_success() {
        return None;
    }
    let request_id = reply.headers().get("request-id")?.to_str().ok()?.to_owned();
    // The body must arrive whole: an answer cut off by the kill was not acknowledged.
    let body: Value = reply.json().await.ok()?;
    Some((request_id, body))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
