//! [`Cluster`]: N `keygate serve` processes of the built binary on random loopback ports,
//! sharing one fresh PostgreSQL database, one Redis namespace of their own and one secret
//! file, as an operator runs several nodes.
//!
//! The workspace is bootstrapped with `keygate bootstrap --json` before any node starts, so
//! no two nodes race to create it. Processes are SIGKILLed when the cluster is dropped (a
//! panicking test too) and the cluster's directory, with each node's log, is then kept and
//! named on stderr; [`Cluster::finish`] instead checks that no node died or panicked, then
//! drops the database and the Redis namespace.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use keygate_limits::redis::{Conn, RedisTarget};
use keygate_store::test_support::{PgTestDatabase, PG_URL_VAR};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How to enable the tests that need both services; also the panic message when they are
/// missing.
pub const NEEDS_SERVICES: &str = "needs PostgreSQL and Redis: KEYGATE_TEST_DATABASE_URL and KEYGATE_TEST_REDIS_URL (scripts/test sets them when they answer)";

/// How to enable the tests on a Redis Cluster.
pub const NEEDS_CLUSTER: &str = "needs PostgreSQL and a Redis Cluster: KEYGATE_TEST_DATABASE_URL and KEYGATE_TEST_REDIS_CLUSTER_URL (scripts/redis-cluster up; scripts/test sets them when they answer)";

/// The environment variable naming the Redis the tests may use.
const REDIS_URL_VAR: &str = "KEYGATE_TEST_REDIS_URL";

/// How long a node may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Several nodes of one deployment, and the owner of its one workspace.
pub struct Cluster {
    nodes: Vec<Node>,
    launch: Arc<Launch>,
    /// The owner's management token of the bootstrapped workspace.
    pub owner_token: String,
    pub workspace_id: String,
    /// Dropped by [`Cluster::finish`]; left behind by a failing test, to look at.
    database: Option<PgTestDatabase>,
    /// Holds the secret file and the nodes' logs.
    dir: Option<tempfile::TempDir>,
    /// Released last, when the cluster is gone.
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

/// What every node is started with.
struct Launch {
    database_url: String,
    redis_url: String,
    redis_namespace: String,
    secret_file: PathBuf,
    dir: PathBuf,
}

/// One `keygate serve` process.
struct Node {
    /// `http://127.0.0.1:<port>`.
    url: String,
    /// Kept so a restarted node answers where it did.
    listen: SocketAddr,
    /// `None` once killed.
    child: Option<Child>,
    log: PathBuf,
}

impl Cluster {
    /// Starts `nodes` nodes on a fresh database and Redis namespace. Panics with
    /// [`NEEDS_SERVICES`] when either service is not configured.
    pub async fn start(nodes: usize) -> Cluster {
        let (Ok(_), Ok(redis_url)) = (std::env::var(PG_URL_VAR), std::env::var(REDIS_URL_VAR))
        else {
            panic!("{NEEDS_SERVICES}");
        };
        Self::start_on_redis(nodes, redis_url).await
    }

    /// Starts `nodes` nodes on a fresh database and a Redis Cluster
    /// (`KEYGATE_TEST_REDIS_CLUSTER_URL`, which `scripts/redis-cluster up` prints).
    pub async fn start_on_redis_cluster(nodes: usize) -> Cluster {
        let (Ok(_), Ok(redis_url)) = (
            std::env::var(PG_URL_VAR),
            std::env::var("KEYGATE_TEST_REDIS_CLUSTER_URL"),
        ) else {
            panic!("{NEEDS_CLUSTER}");
        };
        Self::start_on_redis(nodes, redis_url).await
    }

    async fn start_on_redis(nodes: usize, redis_url: String) -> Cluster {
        // One cluster at a time: three nodes may open 16 PostgreSQL connections each (48 of
        // the server's default 100), and on a small machine the nodes of parallel clusters
        // would measure each other.
        static ONE_AT_A_TIME: OnceLock<Arc<tokio::sync::Mutex<()>>> = OnceLock::new();
        let turn = ONE_AT_A_TIME
            .get_or_init(Arc::default)
            .clone()
            .lock_owned()
            .await;
        redis_answers(&redis_url).await;
        let database = PgTestDatabase::create("cluster").await;
        let dir = tempfile::Builder::new()
            .prefix("keygate-cluster-")
            .tempdir()
            .expect("a directory for the cluster");
        let launch = Arc::new(Launch {
            database_url: database.url.clone(),
            redis_url,
            redis_namespace: keygate_core::ids::new_id("test").to_lowercase(),
            secret_file: dir.path().join("keygate.secret"),
            dir: dir.path().to_owned(),
        });
        let (owner_token, workspace_id) = launch.bootstrap().await;
        let starting: Vec<_> = (0..nodes)
            .map(|index| {
                let launch = launch.clone();
                tokio::spawn(async move { launch.spawn(index, "127.0.0.1:0").await })
            })
            .collect();
        let mut started = Vec::with_capacity(nodes);
        for node in starting {
            started.push(node.await.expect("a node started"));
        }
        Cluster {
            nodes: started,
            launch,
            owner_token,
            workspace_id,
            database: Some(database),
            dir: Some(dir),
            _turn: turn,
        }
    }

    /// The owner's HTTP access to every node, cheap to clone into concurrent tasks.
    pub fn api(&self) -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            urls: self.nodes.iter().map(|n| n.url.clone()).collect(),
            token: self.owner_token.as_str().into(),
        }
    }

    /// SIGKILLs node `index` (no graceful shutdown: buffered work is lost as in a crash) and
    /// waits until it is gone.
    pub async fn kill(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        if let Some(mut child) = node.child.take() {
            // An error here means it had already exited; the wait below says so either way.
            let _ = child.start_kill();
            child.wait().await.expect("the killed node exited");
        }
    }

    /// Starts node `index` again on the address it had (kills it first if it still runs).
    pub async fn restart(&mut self, index: usize) {
        self.kill(index).await;
        let listen = self.nodes[index].listen.to_string();
        self.nodes[index] = self.launch.spawn(index, &listen).await;
    }

    /// Checks that every node not killed on purpose is still running and that none logged a
    /// panic, stops them, and drops the database and the Redis namespace.
    pub async fn finish(mut self) {
        for (index, node) in self.nodes.iter_mut().enumerate() {
            if let Some(child) = node.child.as_mut() {
                if let Some(exit) = child.try_wait().expect("a node's state") {
                    panic!(
                        "node {index} died during the test ({exit}); its log:\n{}",
                        read_log(&node.log)
                    );
                }
            }
            let log = read_log(&node.log);
            assert!(
                !log.contains("panicked"),
                "node {index} panicked; its log:\n{log}"
            );
        }
        for index in 0..self.nodes.len() {
            self.kill(index).await;
        }
        if let Some(database) = self.database.take() {
            database.drop_database().await;
        }
        forget_namespace(&self.launch.redis_url, &self.launch.redis_namespace).await;
        if let Some(dir) = self.dir.take() {
            dir.close().ok();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = child.start_kill();
            }
        }
        // Only a test that did not `finish` gets here with its directory: keep the logs.
        if let Some(dir) = self.dir.take() {
            let kept = dir.keep();
            eprintln!(
                "cluster left behind: logs in {}, Redis namespace {}, database {}",
                kept.display(),
                self.launch.redis_namespace,
                self.database.as_ref().map_or("-", |d| d.name.as_str())
            );
        }
    }
}

impl Launch {
    /// `keygate bootstrap --json`: the workspace and the owner's token. Also creates the
    /// secret file every node then reads.
    async fn bootstrap(&self) -> (String, String) {
        let out = keygate_command()
            .args(["bootstrap", "--json", "--database-url", &self.database_url])
            .arg("--secret-file")
            .arg(&self.secret_file)
            .output()
            .await
            .expect("run keygate bootstrap");
        assert!(
            out.status.success(),
            "keygate bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: Value = serde_json::from_slice(&out.stdout).expect("bootstrap prints JSON");
        let field = |name: &str| {
            printed[name]
                .as_str()
                .unwrap_or_else(|| panic!("bootstrap printed no {name}: {printed}"))
                .to_owned()
        };
        (field("token"), field("workspace_id"))
    }

    /// Starts node `index` listening on `listen` and waits for its address.
    async fn spawn(&self, index: usize, listen: &str) -> Node {
        let log = self.dir.join(format!("node{index}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("a log file for the node");
        let mut child = keygate_command()
            .args(["serve", "--listen", listen])
            .args(["--database-url", &self.database_url])
            .args(["--redis-url", &self.redis_url])
            .args(["--redis-namespace", &self.redis_namespace])
            // The webhook tests' receiver listens on loopback.
            .arg("--webhooks-allow-loopback")
            .arg("--secret-file")
            .arg(&self.secret_file)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("start keygate serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let address = async {
            while let Some(line) = lines.next_line().await.expect("read the node's stdout") {
                if let Some(url) = line.strip_prefix("Keygate is listening on ") {
                    return Some(url.trim().to_owned());
                }
            }
            None
        };
        let url = match tokio::time::timeout(START_TIMEOUT, address).await {
            Ok(Some(url)) => url,
            outcome => panic!(
                "node {index} did not start ({}); its log:\n{}",
                if outcome.is_err() {
                    "no address in time"
                } else {
                    "it exited"
                },
                read_log(&log)
            ),
        };
        // Keep draining stdout so the node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let listen = url
            .trim_start_matches("http://")
            .parse()
            .expect("the node prints its socket address");
        Node {
            url,
            listen,
            child: Some(child),
            log,
        }
    }
}

/// The built binary, with no `KEYGATE_*` setting of the caller's environment leaking in.
fn keygate_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keygate"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYGATE_") {
            command.env_remove(name);
        }
    }
    let log_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    command.env("RUST_LOG", log_filter);
    command
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}

/// Connects to the Redis (one server, or a Redis Cluster given as `redis+cluster://…` seeds)
/// as the nodes' limiter does.
async fn redis_connection(url: &str) -> Option<Conn> {
    let target = RedisTarget::parse(url).ok()?;
    target.connect(Duration::from_secs(5)).await.ok()
}

/// Panics with the how-to unless Redis answers a PING.
async fn redis_answers(url: &str) {
    let answered = async {
        let mut conn = redis_connection(url).await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    let answered = tokio::time::timeout(Duration::from_secs(10), answered).await;
    assert!(
        matches!(answered, Ok(Some(_))),
        "Redis at {REDIS_URL_VAR} does not answer; {NEEDS_SERVICES}"
    );
}

/// Deletes every Redis key of the namespace (limit counters, holds, credit), on every master
/// of a Redis Cluster.
async fn forget_namespace(url: &str, namespace: &str) {
    let mut conn = redis_connection(url).await.expect("connect to Redis");
    let pattern = format!("kg:{namespace}:*");
    let mut keys = BTreeSet::new();
    for node in conn.masters().await.expect("the Redis nodes") {
        let mut cursor = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (u64, Vec<String>) = conn.on_node(&node, &scan).await.expect("SCAN");
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    // One at a time: on a cluster, keys of different hash tags live on different shards.
    for key in keys {
        redis::cmd("UNLINK")
            .arg(&key)
            .query_async::<i64>(&mut conn)
            .await
            .expect("UNLINK");
    }
}

/// The owner's HTTP access to the nodes. Node numbers wrap around, so request `i` can go to
/// node `i` and the requests are spread over the nodes in turn.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    urls: Vec<String>,
    token: Arc<str>,
}

/// An answer: its status and JSON body (`Null` when there is none).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Api {
    /// How many nodes there are.
    pub fn nodes(&self) -> usize {
        self.urls.len()
    }

    /// Node `node`'s base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self, node: usize) -> &str {
        &self.urls[node % self.urls.len()]
    }

    /// A request to node `node` (modulo the number of nodes) as the owner.
    pub async fn call(
        &self,
        node: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let url = format!("{}{path}", self.url(node));
        let mut request = self
            .client
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let bytes = response.bytes().await.expect("read the body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply { status, body }
    }

    pub async fn get(&self, node: usize, path: &str) -> Reply {
        self.call(node, Method::GET, path, None).await
    }

    /// A POST that may find no one there (a killed node): `None` when nothing answered.
    pub async fn try_post(&self, node: usize, path: &str, body: Value) -> Option<Reply> {
        let url = format!("{}{path}", self.url(node));
        let response = self
            .client
            .post(&url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .ok()?;
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        Some(Reply { status, body })
    }

    pub async fn post(&self, node: usize, path: &str, body: Value) -> Reply {
        self.call(node, Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, node: usize, path: &str, body: Value) -> Reply {
        self.call(node, Method::PATCH, path, Some(body)).await
    }

    /// Creates a key through node `node`; returns its id and secret.
    pub async fn create_key(&self, node: usize, body: Value) -> (String, String) {
        let reply = self.post(node, "/v1/keys", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let field = |name: &str| {
            reply.body[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {}", reply.body))
                .to_owned()
        };
        (field("id"), field("secret"))
    }

    /// One limit of a key as node `node` reports it (`GET /v1/keys/{id}/limits`): the
    /// `kind` entry (`rate`, `cost`, `credits`, …).
    pub async fn key_limit(&self, node: usize, key_id: &str, kind: &str) -> Value {
        let reply = self.get(node, &format!("/v1/keys/{key_id}/limits")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body["limits"]
            .as_array()
            .and_then(|limits| limits.iter().find(|l| l["kind"] == kind))
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} limit in {}", reply.body))
    }
}
