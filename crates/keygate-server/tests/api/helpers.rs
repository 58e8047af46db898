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

pub struct Spawn {
    pub dir: Option<Arc<tempfile::TempDir>>,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub clock: Option<FixedClock>,
}

impl TestApp {
    /// A server on a fresh SQLite file in a temporary directory.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Spawn {
            dir: None,
            database_url: None,
            redis_url: None,
            clock: None,
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
        Reply::from(request.send().await.expect("send")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Creates a key as the owner and returns the whole 201 body (with `secret`).
    pub async fn create_key(&self, body: Value) -> Value {
        let reply = self.post("/v1/keys", &self.owner_token, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
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

    /// Verifies a key with the owner's token.
    pub async fn verify(&self, body: Value) -> Value {
        let reply = self.post("/v1/keys/verify", &self.owner_token, body).await;
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
            .post(
                "/v1/members",
                &self.owner_token,
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
