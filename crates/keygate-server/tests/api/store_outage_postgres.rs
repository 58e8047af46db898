//! PostgreSQL unreachable for a while: what needs the store answers 503 `store_unavailable`
//! (never a 500, never "valid" for a key the node does not know), keys already cached keep
//! verifying, and the node recovers by itself when the database is back. The outage is a TCP
//! relay between the node and PostgreSQL that the test cuts and restores.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate_store::test_support::PgTestDatabase;
use reqwest::StatusCode;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{Spawn, TestApp};

/// Relays connections to `target` while up; when cut, drops every open connection and
/// closes new ones at once, as a database that went away.
struct Relay {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up_in, links_in) = (up.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up_in.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links_in.lock().expect("links").push(link);
            }
        });
        Relay {
            addr,
            up,
            links,
            accept,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// `postgres://user@host:port/db?q` → (`host:port`, the URL with `relay` in its place).
fn through(url: &str, relay: std::net::SocketAddr) -> (String, String) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host = &authority[host_start..];
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let relayed = format!(
        "{}{}{relay}{}",
        &url[..after_scheme],
        &authority[..host_start],
        &rest[authority_end..]
    );
    (host, relayed)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: KEYGATE_TEST_DATABASE_URL (scripts/test sets it when PostgreSQL answers)"]
async fn postgres_unreachable_answers_503_keeps_cached_keys_and_recovers() {
    let db = PgTestDatabase::create("api").await;
    let (target, _) = through(&db.url, "127.0.0.1:1".parse().expect("addr"));
    let relay = Relay::start(target).await;
    let (_, relayed_url) = through(&db.url, relay.addr);
    let app = TestApp::spawn_with(Spawn {
        dir: Some(Arc::new(tempfile::tempdir().expect("tempdir"))),
        database_url: Some(relayed_url),
        ..Spawn::default()
    })
    .await;
    let (_, secret) = app.new_key("cached").await;
    let verify = |key: String| {
        let app = &app;
        async move {
            app.owner_post("/v1/keys/verify", json!({ "key": key }))
                .await
        }
    };
    assert_eq!(verify(secret.clone()).await.body["code"], "valid");
    // A real key this node has never looked up, so nothing about it is cached.
    let (_, unseen) = app.new_key("never verified").await;

    relay.cut();
    let cached = verify(secret.clone()).await;
    assert_eq!(cached.status, StatusCode::OK, "{}", cached.body);
    assert_eq!(cached.body["code"], "valid", "a cached key keeps verifying");
    let created = app
        .owner_post("/v1/keys", json!({"name": "during the outage"}))
        .await;
    created.assert_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    assert!(created.headers.get("retry-after").is_some());
    verify(unseen.clone())
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");

    relay.restore();
    let mut recovered = false;
    for _ in 0..60 {
        let reply = app
            .owner_post("/v1/keys", json!({"name": "after the outage"}))
            .await;
        if reply.status == StatusCode::CREATED || reply.status == StatusCode::OK {
            recovered = true;
            break;
        }
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        recovered,
        "the node recovers by itself when PostgreSQL is back"
    );
    app.stop().await;
    drop(relay);
    db.drop_database().await;
}
