//! What one verification costs the shared services, counted rather than estimated, for
//! `docs/scaling.md`: Redis commands (on a private `redis-server`, so nothing else is counted),
//! the node's store reads on the request path (its `store_key_lookups` counter), and
//! PostgreSQL transactions (`pg_stat_database` of the test's own database, which includes the
//! background flushes), on the hot path (a cached key) and the cold path (keys the node has
//! never seen). Prints the figures
//! and checks the ones the design promises: a hot verification never touches PostgreSQL, and
//! a limited one is one Redis script call.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use keygate_store::test_support::{pg_url, PgTestDatabase};
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::helpers::{Spawn, TestApp};

const NEEDS: &str = "needs PostgreSQL and Redis: KEYGATE_TEST_DATABASE_URL and KEYGATE_TEST_REDIS_URL (scripts/test sets them when they answer); also runs redis-server";

/// A `redis-server` of this test's own, stopped on drop.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{NEEDS}: {e}"));
        let redis = PrivateRedis { child, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Calls of a command so far (`INFO commandstats`).
    async fn calls(&self, command: &str) -> u64 {
        self.stat(command, "calls").await as u64
    }

    /// One figure of a command's `INFO commandstats` line (`calls`, `usec_per_call`).
    async fn stat(&self, command: &str, field: &str) -> f64 {
        let client = redis::Client::open(self.url()).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .expect("INFO");
        let prefix = format!("cmdstat_{command}:");
        let wanted = format!("{field}=");
        info.lines()
            .find_map(|line| line.trim().strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').find_map(|kv| kv.strip_prefix(&wanted)))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn transactions(admin_url: &str, database: &str) -> u64 {
    let mut conn = PgConnection::connect(admin_url).await.expect("PostgreSQL");
    let (committed,): (i64,) =
        sqlx::query_as("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
            .bind(database)
            .fetch_one(&mut conn)
            .await
            .expect("pg_stat_database");
    u64::try_from(committed).unwrap_or(0)
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis: KEYGATE_TEST_DATABASE_URL and KEYGATE_TEST_REDIS_URL (scripts/test sets them when they answer)"]
async fn postgres_redis_round_trips_per_verification() {
    let admin_url = pg_url();
    let db = PgTestDatabase::create("api").await;
    let redis = PrivateRedis::start().await;
    let app = TestApp::spawn_with(Spawn {
        dir: Some(Arc::new(tempfile::tempdir().expect("tempdir"))),
        database_url: Some(db.url.clone()),
        redis_url: Some(redis.url()),
        ..Spawn::default()
    })
    .await;
    for _ in 0..200 {
        let health: serde_json::Value = app
            .get_anonymous("/healthz")
            .await
            .json()
            .await
            .expect("json");
        if health["invalidation"]["lease"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let limited = json!({"rate_limits": [{"limit": 1_000_000, "window": "1m"}]});
    let n: u64 = 500;

    // Hot: one cached key with a rate limit, verified n times.
    let hot = app
        .create_key(json!({"name": "hot", "limits": limited}))
        .await;
    let secret = hot["secret"].as_str().expect("secret").to_owned();
    let verify = |key: String| {
        let app = &app;
        async move {
            let reply = app
                .owner_post("/v1/keys/verify", json!({ "key": key }))
                .await;
            assert_eq!(reply.body["code"], "valid", "{}", reply.body);
        }
    };
    verify(secret.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // let the flushes of setup pass
    let lookups = || app.state.metrics.store_key_lookups.load(Ordering::Relaxed);
    let hot_started = std::time::Instant::now();
    let (evalsha, txns, reads) = (
        redis.calls("evalsha").await,
        transactions(&admin_url, &db.name).await,
        lookups(),
    );
    for _ in 0..n {
        verify(secret.clone()).await;
    }
    let hot_scripts = redis.calls("evalsha").await - evalsha;
    let hot_reads = lookups() - reads;
    // PostgreSQL publishes its counters about once a second; the usage and last-used
    // flushes run once a second too. Read after both.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let hot_all_txns = transactions(&admin_url, &db.name).await - txns;
    // What the node's background work (flushes, the webhook dispatcher's polls, scans) costs
    // with no request at all, over as long as the hot phase took: on a loaded machine the
    // phase takes longer and holds more of those, which are not the requests' doing.
    let idle_from = transactions(&admin_url, &db.name).await;
    tokio::time::sleep(hot_started.elapsed()).await;
    let idle_txns = transactions(&admin_url, &db.name).await - idle_from;

    // Cold: n keys the node has never looked up, each verified once.
    let mut secrets = Vec::new();
    for i in 0..n {
        let key = app
            .create_key(json!({"name": format!("cold {i}"), "limits": limited}))
            .await;
        secrets.push(key["secret"].as_str().expect("secret").to_owned());
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (evalsha, txns, reads) = (
        redis.calls("evalsha").await,
        transactions(&admin_url, &db.name).await,
        lookups(),
    );
    for secret in &secrets {
        verify(secret.clone()).await;
    }
    let cold_scripts = redis.calls("evalsha").await - evalsha;
    let cold_reads = lookups() - reads;
    // A backend that finds the counters busy publishes its own up to ten seconds later
    // (PostgreSQL's PGSTAT_IDLE_INTERVAL), which a loaded machine hits: wait for them.
    let mut cold_all_txns = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cold_all_txns = transactions(&admin_url, &db.name).await - txns;
        if cold_all_txns >= n {
            break;
        }
    }

    let per = |count: u64| count as f64 / n as f64;
    eprintln!(
        "per verification over {n}: hot — Redis scripts {:.2}, store reads on the request path {:.3}, PostgreSQL transactions with the background flushes {:.3}; cold — Redis scripts {:.2}, store reads {:.3}, PostgreSQL transactions with the flushes {:.3}",
        per(hot_scripts),
        per(hot_reads),
        per(hot_all_txns),
        per(cold_scripts),
        per(cold_reads),
        per(cold_all_txns),
    );
    eprintln!(
        "Redis server time per decision script (evalsha usec_per_call): {:.1} µs; per publish: {:.1} µs",
        redis.stat("evalsha", "usec_per_call").await,
        redis.stat("publish", "usec_per_call").await,
    );
    assert_eq!(
        hot_scripts, n,
        "a limited verification is one Redis script call"
    );
    assert_eq!(cold_scripts, n);
    assert_eq!(hot_reads, 0, "a hot verification does not read the store");
    assert_eq!(cold_reads, n, "a cold verification reads the key once");
    assert!(
        hot_all_txns.saturating_sub(idle_txns) * 10 <= n,
        "the hot path's PostgreSQL load is the per-second flushes ({hot_all_txns} for {n}, \
         {idle_txns} in as long without requests)"
    );
    assert!(
        cold_all_txns >= n,
        "every cold read is a PostgreSQL transaction ({cold_all_txns} for {n})"
    );
    app.stop().await;
    db.drop_database().await;
}
