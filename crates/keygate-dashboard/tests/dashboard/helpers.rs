//! `DashApp`: a real Keygate server (API and dashboard) on a random loopback port with a fresh
//! SQLite database and a fixed clock, and a browser-like client: it keeps no cookies and
//! follows no redirects, so each test sees exactly what the server sent.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use keygate_core::{Clock, FixedClock};
use keygate_dashboard::DashboardSettings;
use keygate_server::{prepare, serve_with, AppState, ServerSettings};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// Every log line any test's server wrote (at debug level), for the secret-leak test.
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
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(|| BufferWriter)
            .with_ansi(false)
            .try_init();
    });
}

pub struct DashApp {
    pub base: String,
    pub client: reqwest::Client,
    pub owner_token: String,
    pub owner_id: String,
    pub state: AppState,
    pub clock: FixedClock,
    /// The owner's one-time sign-in link (path and query), as `keygate serve` prints it.
    pub owner_link: String,
    _dir: tempfile::TempDir,
    _shutdown: oneshot::Sender<()>,
}

/// What a request got back.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn set_cookie(&self) -> &str {
        self.headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A signed-in browser: its session cookie and the CSRF token its pages carry.
#[derive(Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl DashApp {
    pub async fn spawn() -> DashApp {
        Self::spawn_with(DashboardSettings::default()).await
    }

    pub async fn spawn_with(dashboard: DashboardSettings) -> DashApp {
        init_logging();
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = format!("sqlite://{}", dir.path().join("keygate.db").display());
        let mut settings = ServerSettings::for_database(&database_url);
        settings.secret_file = dir.path().join("keygate.secret");
        let clock = FixedClock::at(chrono::Utc::now());
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let (state, bootstrapped) = prepare(&settings, shared).await.expect("prepare");
        let bootstrapped = bootstrapped.expect("a fresh store bootstraps");
        let link = keygate_dashboard::issue_sign_in_link(&state, &bootstrapped.owner)
            .await
            .expect("link");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(serve_with(
            listener,
            state.clone(),
            keygate_dashboard::router(dashboard),
            async move {
                let _ = rx.await;
            },
        ));
        DashApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            owner_token: bootstrapped.token.expose().to_owned(),
            owner_id: bootstrapped.owner.id.clone(),
            state,
            clock,
            owner_link: link.path(),
            _dir: dir,
            _shutdown: tx,
        }
    }

    async fn page(response: reqwest::Response) -> Page {
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.expect("body"),
        }
    }

    /// A GET as the browser of `session` (or signed out).
    pub async fn get(&self, path: &str, session: Option<&Session>) -> Page {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(session) = session {
            request = request.header("cookie", format!("keygate_session={}", session.cookie));
        }
        Self::page(request.send().await.expect("GET")).await
    }

    /// A form POST from this origin, as a browser sends it.
    pub async fn post(&self, path: &str, session: Option<&Session>, form: &[(&str, &str)]) -> Page {
        self.post_with(
            path,
            session,
            form,
            &[("origin", &self.base), ("sec-fetch-site", "same-origin")],
        )
        .await
    }

    /// A form POST with these extra headers (and no others).
    pub async fn post_with(
        &self,
        path: &str,
        session: Option<&Session>,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = self.client.post(format!("{}{path}", self.base)).form(form);
        if let Some(session) = session {
            request = request.header("cookie", format!("keygate_session={}", session.cookie));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::page(request.send().await.expect("POST")).await
    }

    /// The session a sign-in answer started (its cookie), with the CSRF token of its pages.
    pub async fn session_from(&self, signed_in: &Page) -> Session {
        assert_eq!(
            signed_in.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_in.body
        );
        assert_eq!(signed_in.location(), "/dashboard/keys");
        let cookie = signed_in
            .set_cookie()
            .strip_prefix("keygate_session=")
            .and_then(|rest| rest.split(';').next())
            .expect("session cookie")
            .to_owned();
        let mut session = Session {
            cookie,
            csrf: String::new(),
        };
        let keys = self.get("/dashboard/keys", Some(&session)).await;
        assert_eq!(keys.status, StatusCode::OK, "{}", keys.body);
        session.csrf = attribute_after(&keys.body, "name=\"csrf\" value=\"").expect("csrf token");
        session
    }

    /// Signs in with a management token.
    pub async fn sign_in(&self, token: &str) -> Session {
        let page = self
            .post("/dashboard/sign-in", None, &[("token", token)])
            .await;
        self.session_from(&page).await
    }

    pub async fn owner(&self) -> Session {
        self.sign_in(&self.owner_token).await
    }

    /// The link's secret (from its query string).
    pub fn link_secret(link: &str) -> &str {
        link.split_once("secret=").map(|(_, s)| s).unwrap_or("")
    }

    /// A management API call with a token; returns status and JSON.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API call");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Adds a member with this role; returns their id and management token.
    pub async fn member(&self, role: &str) -> (String, String) {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                "/v1/members",
                &self.owner_token,
                Some(json!({"name": format!("a {role}"), "role": role})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_str().expect("id").to_owned(),
            body["token"].as_str().expect("token").to_owned(),
        )
    }

    /// Creates a key through the API (as the owner); returns its id.
    pub async fn api_key(&self, name: &str) -> String {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                "/v1/keys",
                &self.owner_token,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// A key as the API shows it.
    pub async fn key(&self, id: &str) -> Value {
        let (status, body) = self
            .api(
                reqwest::Method::GET,
                &format!("/v1/keys/{id}"),
                &self.owner_token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The workspace's audit rows, newest first.
    pub async fn audit(&self) -> Vec<Value> {
        let (status, body) = self
            .api(reqwest::Method::GET, "/v1/audit", &self.owner_token, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// How many keys the workspace has.
    pub async fn key_count(&self) -> usize {
        let (_, body) = self
            .api(reqwest::Method::GET, "/v1/keys", &self.owner_token, None)
            .await;
        body["items"].as_array().map_or(0, Vec::len)
    }
}

/// The text after `marker` up to the next `"`.
pub fn attribute_after(html: &str, marker: &str) -> Option<String> {
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}
