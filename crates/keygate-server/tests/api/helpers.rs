//! `TestApp`: a real Keygate server on a random loopback port with a fresh database, and
//! helpers so each test reads like the scenario it checks.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use keygate_core::{Clock, FixedClock};
use keygate_server::{prepare, serve, AppState, ServerSettings};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// Every log line any test's server wrote, for the secret-leak test.
pub fn captured_logs() -> String {
    let buffer = log_buffer().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&buffer).into_owned()
}

fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static BUFFER: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUFFER.get_or_init(|| Mutex::new(Vec::new()))
}

struct BufferWriter;

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        log_buffer()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Everything Keygate and its libraries log at debug level and above is captured.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(|| BufferWriter)
            .with_ansi(false)
            .try_init();
    });
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The owner's management token of the bootstrapped workspace.
    pub owner_token: String,
    pub workspace_id: String,
    pub state: AppState,
    pub clock: FixedClock,
    pub dir: Arc<tempfile::TempDir>,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// What a server is started with; each `None` is a fresh one (directory, SQLite file, clock),
/// or none at all (Redis).
#[derive(Default)]
pub struct Spawn {
    pub dir: Option<Arc<tempfile::TempDir>>,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub clock: Option<FixedClock>,
    /// Webhooks may go to http://127.0.0.1 (a receiver in the test).
    pub webhooks_allow_loopback: bool,
    /// How often keys about to expire are looked for (the server's default when `None`).
    pub webhooks_expiry_scan_every: Option<Duration>,
    /// How long an endpoint may fail before it is disabled (the default when `None`).
    pub webhooks_disable_after: Option<Duration>,
}

impl Spawn {
    /// A fresh database, with the limits kept in this Redis.
    pub fn with_redis(url: impl Into<String>) -> Spawn {
        Spawn {
            redis_url: Some(url.into()),
            ..Spawn::default()
        }
    }
}

impl TestApp {
    /// A server on a fresh SQLite file in a temporary directory.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Spawn::default()).await
    }

    /// A second server on this one's database and clock, as another node of one deployment
    /// (sharing limits only through `redis_url`, when given).
    pub async fn another_node(&self, redis_url: Option<String>) -> TestApp {
        Self::spawn_with(Spawn {
            dir: Some(self.dir.clone()),
            database_url: Some(self.database_url.clone()),
            redis_url,
            clock: Some(self.clock.clone()),
            ..Spawn::default()
        })
        .await
    }

    pub async fn spawn_with(options: Spawn) -> TestApp {
        Self::spawn_configured(options, None).await
    }

    /// A server in gateway mode whose config names the bootstrapped workspace: `config` gets
    /// the workspace's id. As an operator would: bootstrap first, then name the workspace in
    /// `keygate.toml` and serve.
    pub async fn spawn_gateway_for(
        config: impl FnOnce(&str) -> keygate_server::gateway::GatewayConfig,
    ) -> TestApp {
        let app = Self::spawn().await;
        let config = config(&app.workspace_id);
        app.restart_with_gateway(config).await
    }

    /// Stops this server and serves the same database (and clock, and owner) again in gateway
    /// mode, so a config can name workspaces and projects created through the API first.
    pub async fn restart_with_gateway(
        self,
        config: keygate_server::gateway::GatewayConfig,
    ) -> TestApp {
        let owner_token = self.owner_token.clone();
        let workspace_id = self.workspace_id.clone();
        let database_url = self.database_url.clone();
        let clock = self.clock.clone();
        let dir = self.stop().await;
        let options = Spawn {
            dir: Some(dir),
            database_url: Some(database_url),
            redis_url: None,
            clock: Some(clock),
            ..Spawn::default()
        };
        let mut app = Self::spawn_configured(options, Some(config)).await;
        app.owner_token = owner_token;
        app.workspace_id = workspace_id;
        app
    }

    /// A server with these options and, when given, this gateway config.
    pub async fn spawn_configured(
        options: Spawn,
        gateway: Option<keygate_server::gateway::GatewayConfig>,
    ) -> TestApp {
        init_logging();
        let dir = options
            .dir
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("tempdir")));
        let database_url = options
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("keygate.db").display()));
        let mut settings = ServerSettings::for_database(&database_url);
        settings.secret_file = dir.path().join("keygate.secret");
        settings.redis_url = options.redis_url;
        settings.webhooks_allow_loopback = options.webhooks_allow_loopback;
        if let Some(every) = options.webhooks_expiry_scan_every {
            settings.webhooks_expiry_scan_every = every;
        }
        if let Some(after) = options.webhooks_disable_after {
            settings.webhooks_disable_after = after;
        }
        settings.gateway = gateway;
        let clock = options
            .clock
            .unwrap_or_else(|| FixedClock::at(chrono::Utc::now()));
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let (state, bootstrapped) = prepare(&settings, shared).await.expect("prepare");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        let (owner_token, workspace_id) = match bootstrapped {
            Some(b) => (b.token.expose().to_owned(), b.workspace.id),
            None => (String::new(), String::new()),
        };
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            owner_token,
            workspace_id,
            state,
            clock,
            dir,
            database_url,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> Arc<tempfile::TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("join").expect("serve");
        }
        self.dir.clone()
    }

    /// A request with a management token; returns status, headers and JSON body (Null if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::send(request).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, token, None).await
    }

    /// A request as the bootstrapped owner: most scenarios act as the owner, and naming the
    /// token at every call only hid what the call was about.
    pub async fn owner_call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, &self.owner_token, body).await
    }

    /// `POST`s a JSON body and hands back the answer unread, for what a [`Reply`] cannot
    /// show: a stream read as it comes, or the headers before the body.
    pub async fn send_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("send")
    }

    /// `POST` with an `Idempotency-Key`, as a client that may retry sends it.
    pub async fn post_idempotent(&self, path: &str, token: &str, key: &str, body: Value) -> Reply {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&body);
        Reply::send(request).await
    }

    /// `POST` as the owner with an `Idempotency-Key`.
    pub async fn owner_post_idempotent(&self, path: &str, key: &str, body: Value) -> Reply {
        self.post_idempotent(path, &self.owner_token, key, body)
            .await
    }

    /// `GET` as the owner.
    pub async fn owner_get(&self, path: &str) -> Reply {
        self.get(path, &self.owner_token).await
    }

    /// `PATCH` as the owner.
    pub async fn owner_patch(&self, path: &str, body: Value) -> Reply {
        self.patch(path, &self.owner_token, body).await
    }

    /// `DELETE` as the owner.
    pub async fn owner_delete(&self, path: &str) -> Reply {
        self.delete(path, &self.owner_token).await
    }

    /// `POST` as the owner.
    pub async fn owner_post(&self, path: &str, body: Value) -> Reply {
        self.post(path, &self.owner_token, body).await
    }

    /// `POST`s something that must be created (201) and returns its body.
    pub async fn create(&self, path: &str, token: &str, body: Value) -> Value {
        let reply = self.post(path, token, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// [`create`](TestApp::create) as the owner.
    pub async fn owner_create(&self, path: &str, body: Value) -> Value {
        self.create(path, &self.owner_token, body).await
    }

    /// A `GET` with no credentials at all, as a browser or a metrics scraper sends it.
    pub async fn get_anonymous(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("send")
    }

    /// The Prometheus text `/metrics` serves now.
    pub async fn metrics_text(&self) -> String {
        let response = self.get_anonymous("/metrics").await;
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("text")
    }

    /// Creates a key as the owner and returns the whole 201 body (with `secret`).
    pub async fn create_key(&self, body: Value) -> Value {
        self.owner_create("/v1/keys", body).await
    }

    /// Changes the workspace's settings as the owner; returns the workspace as changed.
    pub async fn patch_workspace(&self, body: Value) -> Value {
        let reply = self.owner_patch("/v1/workspace", body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    /// Creates a key with just a unique name.
    pub async fn new_key(&self, name: &str) -> (String, String) {
        let created = self.create_key(json!({ "name": name })).await;
        (
            created["id"].as_str().expect("id").to_owned(),
            created["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// A key's lifecycle action (`disable`, `enable`, `revoke`, `regenerate`, `rotate` with
    /// the default grace) as the owner, with an empty body.
    pub async fn key_action(&self, id: &str, action: &str) -> Reply {
        self.owner_post(&format!("/v1/keys/{id}/{action}"), json!({}))
            .await
    }

    /// Settles a reservation as the owner (`body` holds the amounts spent).
    pub async fn owner_settle(&self, reservation_id: &str, body: Value) -> Reply {
        let path = format!("/v1/reservations/{reservation_id}/settle");
        self.owner_post(&path, body).await
    }

    /// Verifies a key with the owner's token.
    pub async fn verify(&self, body: Value) -> Value {
        let reply = self.owner_post("/v1/keys/verify", body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    /// The verify `code` for a key.
    pub async fn verify_code(&self, key: &str) -> String {
        self.verify(json!({ "key": key })).await["code"]
            .as_str()
            .expect("code")
            .to_owned()
    }

    /// Adds a member with a role and returns their token.
    pub async fn member_token(&self, role: &str) -> String {
        let reply = self
            .owner_post(
                "/v1/members",
                json!({"name": format!("{role} member"), "role": role}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["token"].as_str().expect("token").to_owned()
    }

    /// A second workspace with its own owner, in the same store.
    pub async fn second_workspace(&self) -> (String, String) {
        let created = keygate_server::bootstrap::create_workspace(
            self.state.store.as_ref(),
            &self.state.secret,
            self.state.clock.as_ref(),
            "other",
            keygate_server::default_prefix(),
        )
        .await
        .expect("second workspace");
        (created.workspace.id, created.token.expose().to_owned())
    }

    /// How many key lookups reached the store.
    pub fn store_lookups(&self) -> u64 {
        self.state
            .metrics
            .store_key_lookups
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends a request built by hand (raw bodies, odd headers, no token) and reads it whole.
    pub async fn send(request: reqwest::RequestBuilder) -> Reply {
        Reply::from(request.send().await.expect("send")).await
    }

    /// The error code of an error reply.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// Asserts the documented error shape and returns the code.
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.code(), code, "{}", self.body);
        let request_id = self.body["error"]["request_id"].as_str().unwrap_or("");
        assert!(request_id.starts_with("req_"), "{}", self.body);
        assert_eq!(
            self.headers
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            request_id
        );
        assert!(!self.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .is_empty());
    }
}
