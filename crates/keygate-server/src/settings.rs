//! Server settings: one typed struct, filled by the binary from flags, environment and
//! defaults (flags win), so the server crate never reads the environment itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::gateway::config::GatewayConfig;
use crate::usage::UsageSettings;

/// The Redis namespace when none is given: the one every deployment used before it could be
/// chosen, so existing counters stay where they are.
pub const DEFAULT_REDIS_NAMESPACE: &str = "live";

/// Everything `serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// `sqlite://keygate.db`, `postgres://…`.
    pub database_url: String,
    /// Shared limiter (and cross-node revocation); `None` means in-process limits.
    pub redis_url: Option<String>,
    /// Prefix of Keygate's Redis keys and channels (`kg:<namespace>:…`), so several
    /// deployments, or test runs, can share one Redis. Every node of a deployment uses the
    /// same one; the binary accepts 1–64 ASCII letters, digits, `_` and `-`.
    pub redis_namespace: String,
    /// The HMAC key as hex; `None` means read or create the secret file.
    pub secret_hex: Option<String>,
    /// Where the generated secret lives when `secret_hex` is `None`.
    pub secret_file: PathBuf,
    /// How long a verified key may be served from memory before it is read again. Changes
    /// made through this node take effect at once regardless; this bounds how long another
    /// node's change can go unseen when there is no Redis to broadcast it.
    pub key_cache_ttl: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Usage recording: on/off, flush interval, buffer size, request-log retention.
    pub usage: UsageSettings,
    /// Gateway mode (proxy routes, AI providers), from `--config`; `None` serves no gateway.
    pub gateway: Option<GatewayConfig>,
    /// Also send webhooks over `http` to loopback addresses (development and tests only;
    /// otherwise only public `https` targets).
    pub webhooks_allow_loopback: bool,
    /// How often each node looks for keys whose `key.expiring` notice is due (a minute; less
    /// in tests).
    pub webhooks_expiry_scan_every: Duration,
    /// An endpoint whose every delivery attempt has failed for this long is disabled (72 h).
    pub webhooks_disable_after: Duration,
}

impl ServerSettings {
    /// Defaults for a database URL; the secret file sits beside an SQLite database, or in the
    /// working directory for PostgreSQL.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let database_url = database_url.into();
        let secret_file = keygate_store::sqlite_path(&database_url)
            .and_then(|p| p.parent().map(|dir| dir.join("keygate.secret")))
            .unwrap_or_else(|| PathBuf::from("keygate.secret"));
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url,
            redis_url: None,
            redis_namespace: DEFAULT_REDIS_NAMESPACE.to_owned(),
            secret_hex: None,
            secret_file,
            key_cache_ttl: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            usage: UsageSettings::default(),
            gateway: None,
            webhooks_allow_loopback: false,
            webhooks_expiry_scan_every: Duration::from_secs(60),
            webhooks_disable_after: Duration::from_secs(72 * 3600),
        }
    }
}
