//! Command-line arguments. Flags win over environment variables, which win over defaults.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "keygate",
    version,
    about = "API keys issued once, stored hashed, verified, limited and metered."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Keygate server.
    Serve(ServeArgs),
    /// Create the first workspace and its owner, print the owner's token once, and exit.
    Bootstrap(BootstrapArgs),
    /// Save the server URL and a management token for the commands below.
    Login(LoginArgs),
    /// Remove the saved management token.
    Logout(LogoutArgs),
    /// Show which server and token the CLI would use, and where each came from.
    Whoami(ClientArgs),
    /// Create, list, change, revoke and verify API keys.
    Keys(Box<KeysArgs>),
    /// Projects that keys can be scoped to.
    Projects(ProjectsArgs),
    /// Identities: your customers, each holding keys, with limits shared by all their keys.
    Identities(Box<IdentitiesArgs>),
    /// Who can manage the workspace (owners only).
    Members(MembersArgs),
    /// The workspace's audit trail: who changed which key, when, from where.
    Audit(AuditArgs),
    /// The workspace and its policies.
    Workspace(WorkspaceArgs),
    /// Webhook endpoints: where Keygate tells your systems that keys and members changed.
    Webhooks(WebhooksArgs),
    /// Find Keygate keys in files (checksum-verified, so look-alikes are not reported): prints
    /// file:line and the key's display form, exits 1 when it finds one. For pre-commit hooks
    /// and CI; reads nothing but the files and sends nothing anywhere.
    Scan(ScanArgs),
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories (searched recursively, skipping .git, target and node_modules);
    /// the current directory when none is given.
    #[arg(value_name = "PATH")]
    pub paths: Vec<std::path::PathBuf>,
    /// Print the findings as JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// Where the data lives; shared by `serve` and `bootstrap`.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://keygate.db` (default, in the working directory) or `postgres://…`.
    #[arg(
        long,
        env = "KEYGATE_DATABASE_URL",
        default_value = "sqlite://keygate.db"
    )]
    pub database_url: String,
    /// File holding the server secret (64 hex characters) for hashing keys. Default:
    /// `keygate.secret` beside the SQLite database, created 0600 on first start. The secret
    /// may instead be given in the environment as `KEYGATE_SECRET`; never on the command
    /// line, where every user of the machine could read it with `ps`. Every node must share it.
    #[arg(long, env = "KEYGATE_SECRET_FILE")]
    pub secret_file: Option<std::path::PathBuf>,
    /// Not accepted (a secret on the command line is visible in `ps`); kept only to say so.
    #[arg(long = "secret", hide = true)]
    pub secret_on_command_line: Option<String>,
}

impl DatabaseArgs {
    /// The database and secret settings: the secret from `KEYGATE_SECRET` or a file, never
    /// from a flag.
    pub fn settings(&self) -> anyhow::Result<keygate_server::ServerSettings> {
        if self.secret_on_command_line.is_some() {
            anyhow::bail!(
                "--secret is not accepted: a secret on the command line is visible to every user in `ps`. \
                 Put it in KEYGATE_SECRET, or in a file passed with --secret-file (KEYGATE_SECRET_FILE)."
            );
        }
        let mut settings = keygate_server::ServerSettings::for_database(&self.database_url);
        settings.secret_hex = std::env::var("KEYGATE_SECRET")
            .ok()
            .filter(|v| !v.trim().is_empty());
        if let Some(file) = &self.secret_file {
            settings.secret_file = file.clone();
        }
        Ok(settings)
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEYGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Redis URL for limits shared by several nodes; default: in-process limits.
    #[arg(long, env = "KEYGATE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of Keygate's keys and channels in Redis (`kg:<namespace>:…`), so several
    /// deployments can share one Redis; every node of a deployment must use the same one.
    #[arg(
        long,
        env = "KEYGATE_REDIS_NAMESPACE",
        default_value = keygate_server::settings::DEFAULT_REDIS_NAMESPACE,
        value_name = "NAME",
        value_parser = parse_redis_namespace
    )]
    pub redis_namespace: String,
    /// Emit logs as JSON lines.
    #[arg(long, env = "KEYGATE_LOG_JSON")]
    pub log_json: bool,
    /// Also send webhooks over plain http to loopback addresses (development and tests only;
    /// otherwise webhooks go to public https addresses only).
    #[arg(long, env = "KEYGATE_WEBHOOKS_ALLOW_LOOPBACK")]
    pub webhooks_allow_loopback: bool,
    /// Believe `X-Forwarded-Proto` and `X-Forwarded-For` from the proxy in front of Keygate
    /// (dashboard cookies become `Secure` behind a TLS proxy; sign-ins are throttled per
    /// client address). Only when that proxy is the only way in and overwrites both headers.
    #[arg(long, env = "KEYGATE_TRUST_PROXY")]
    pub trust_proxy: bool,
    /// How long the request log keeps each request (`7d`, `24h`, `30d`), for "which key made
    /// request req_…"; daily usage rollups are kept for good.
    #[arg(
        long = "usage-retention",
        env = "KEYGATE_REQUEST_LOG_RETENTION",
        default_value = "7d",
        value_name = "DURATION",
        value_parser = parse_retention
    )]
    pub usage_retention: std::time::Duration,
    /// Record usage, the request log and failed attempts (`on`), or not (`off`).
    #[arg(
        long = "usage-recording",
        env = "KEYGATE_USAGE_RECORDING",
        default_value = "on",
        value_parser = ["on", "off"]
    )]
    pub usage_recording: String,
    /// Gateway config (TOML): proxy routes, AI providers and prices. See
    /// `keygate.example.toml`. Without it no gateway routes are served.
    #[arg(long = "config", env = "KEYGATE_CONFIG_FILE", value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Print `{"workspace_id","token"}` as JSON.
    #[arg(long)]
    pub json: bool,
    /// Name of the workspace.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Key prefix for the workspace's keys.
    #[arg(long, default_value = "kg")]
    pub prefix: String,
}

// ---- The CLI half: commands that talk to a server's management API. ----
//
// `--url`, `--api-key` and `--json` are flattened into each client command (and `global`
// below it, so `keygate keys list --json` and `keygate keys --json list` both work) rather
// than put on the top-level parser: `bootstrap` already has a `--json` of its own.

/// Where the server is, how to authenticate, and how to print.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server URL [env: KEYGATE_URL] [default: http://127.0.0.1:8080].
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Management token (`kgm_…`) [env: KEYGATE_API_KEY]. Visible to other local users in
    /// the process list: prefer `keygate login` or the environment.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub api_key: Option<String>,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Read the token from standard input instead of asking for it.
    #[arg(long)]
    pub with_token: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// Limits shared by `keys create` and `keys update`.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Requests per minute.
    #[arg(long, value_name = "N")]
    pub rpm: Option<u64>,
    /// Another request window, as LIMIT/WINDOW (e.g. 1000/1h); repeatable.
    #[arg(long = "rate-limit", value_name = "LIMIT/WINDOW", value_parser = parse_rate_window)]
    pub rate_limits: Vec<(u64, String)>,
    /// Tokens per reset period.
    #[arg(long, value_name = "N")]
    pub token_limit: Option<u64>,
    /// Cost (USD) per reset period, e.g. 1.50.
    #[arg(long, value_name = "USD", value_parser = parse_dollars)]
    pub cost_limit: Option<String>,
    /// When the token and cost limits start again.
    #[arg(long, value_enum, default_value_t = ResetArg::Monthly)]
    pub reset: ResetArg,
    /// Daily spend cap (USD), resets at 00:00 UTC.
    #[arg(long, value_name = "USD", value_parser = parse_dollars)]
    pub spend_cap: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResetArg {
    Daily,
    Weekly,
    Monthly,
    Never,
}

impl From<ResetArg> for keygate_api::ResetPeriod {
    fn from(reset: ResetArg) -> Self {
        match reset {
            ResetArg::Daily => Self::Daily,
            ResetArg::Weekly => Self::Weekly,
            ResetArg::Monthly => Self::Monthly,
            ResetArg::Never => Self::Never,
        }
    }
}

/// Where a new secret goes instead of the terminal.
#[derive(Debug, Clone, Args)]
pub struct SecretDestination {
    /// Write the secret to this .env file (created 0600, or appended to) instead of printing it.
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<std::path::PathBuf>,
    /// Variable name for --env-file.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "KEYGATE_KEY",
        requires = "env_file"
    )]
    pub env_var: String,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and show its secret once.
    Create(CreateKeyArgs),
    /// List keys.
    #[command(alias = "ls")]
    List(ListKeysArgs),
    /// Show one key (by id or name).
    Show(KeyRef),
    /// Change a key's name, description, scope, permissions, expiry or limits.
    Update(UpdateKeyArgs),
    /// Stop a key from working until it is enabled again.
    Disable(KeyRef),
    /// Let a disabled key work again.
    Enable(KeyRef),
    /// Revoke a key for good: it stops working at once and cannot be enabled again.
    Revoke(ConfirmedKeyRef),
    /// Delete a key permanently (asks you to type its name).
    #[command(alias = "rm")]
    Delete(ConfirmedKeyRef),
    /// Give a key a new secret; the old one stops working at once.
    Regenerate(RegenerateArgs),
    /// Give a key a new secret; the old one keeps working for a grace period.
    Rotate(RotateArgs),
    /// Requests, tokens and cost per day, by operation and by project.
    Usage(UsageArgs),
    /// Check a key the way your backend would (exit 1 when it is not valid).
    Verify(VerifyArgs),
    /// Bring an existing ("legacy") key under Keygate without changing it.
    Import(ImportArgs),
    /// Report a key found where it should not be: the workspace's leak policy applies (revoke
    /// by default). The secret is read from standard input, never from the command line.
    ReportLeak(ReportLeakArgs),
}

#[derive(Debug, Args)]
pub struct ReportLeakArgs {
    /// Where it was found, e.g. a URL (recorded in the audit trail, never fetched). Not
    /// `--url`, which names the Keygate server.
    #[arg(long, value_name = "URL")]
    pub found_at: Option<String>,
    /// Who or what found it.
    #[arg(long, default_value = "keygate-cli")]
    pub source: String,
}

/// A key, by id (`key_…`) or by its name.
#[derive(Debug, Args)]
pub struct KeyRef {
    /// Key id (`key_…`) or name.
    #[arg(value_name = "ID|NAME")]
    pub key: String,
}

#[derive(Debug, Args)]
pub struct ConfirmedKeyRef {
    #[arg(value_name = "ID|NAME")]
    pub key: String,
    /// Do not ask for confirmation (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct CreateKeyArgs {
    /// Unique name in the workspace.
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub description: Option<String>,
    /// Environment tag: live, test, dev, stg, prod, ci or your own.
    #[arg(long = "env", value_name = "ENV")]
    pub environment: Option<String>,
    /// Project (id or name) the key may act on; repeatable. Default: all projects.
    #[arg(long = "scope", value_name = "PROJECT")]
    pub scopes: Vec<String>,
    /// Permission such as `results:read`; repeatable.
    #[arg(long = "permission", value_name = "P")]
    pub permissions: Vec<String>,
    /// 30d, 90d, 1y, never, a date (YYYY-MM-DD, midnight UTC) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_expiry)]
    pub expires: Option<Expiry>,
    /// Metadata as KEY=VALUE; repeatable.
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub metadata: Vec<(String, String)>,
    /// The identity (customer) the key belongs to: its id (`idt_…`) or external id.
    #[arg(long, value_name = "IDENTITY")]
    pub identity: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub destination: SecretDestination,
}

#[derive(Debug, Args)]
pub struct ListKeysArgs {
    /// Only keys with this status.
    #[arg(long, value_parser = ["active", "disabled", "revoked"])]
    pub status: Option<String>,
    /// Only keys of this environment.
    #[arg(long = "env", value_name = "ENV")]
    pub environment: Option<String>,
    /// Only keys scoped to this project id.
    #[arg(long)]
    pub project: Option<String>,
    /// Only keys whose name or description contains this text.
    #[arg(long)]
    pub search: Option<String>,
    /// Only keys of this identity (id or external id).
    #[arg(long, value_name = "IDENTITY")]
    pub identity: Option<String>,
    /// Keys per page (1–500).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: Option<u32>,
    /// Follow pagination to the last page.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct UpdateKeyArgs {
    #[arg(value_name = "ID|NAME")]
    pub key: String,
    #[arg(long)]
    pub name: Option<String>,
    /// New description ("" clears it).
    #[arg(long)]
    pub description: Option<String>,
    /// Replace the scope with these projects (id or name); `--scope all` for every project.
    #[arg(long = "scope", value_name = "PROJECT")]
    pub scopes: Vec<String>,
    /// Replace the permissions with these; repeatable.
    #[arg(long = "permission", value_name = "P")]
    pub permissions: Vec<String>,
    /// Remove every permission.
    #[arg(long, conflicts_with = "permissions")]
    pub clear_permissions: bool,
    /// 30d, 90d, 1y, never, a date or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_expiry)]
    pub expires: Option<Expiry>,
    /// Remove every limit of the key (rate windows fall back to the workspace default).
    #[arg(long)]
    pub clear_limits: bool,
    /// Move the key to this identity (id or external id).
    #[arg(long, value_name = "IDENTITY", conflicts_with = "no_identity")]
    pub identity: Option<String>,
    /// Take the key out of its identity.
    #[arg(long)]
    pub no_identity: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct RegenerateArgs {
    #[arg(value_name = "ID|NAME")]
    pub key: String,
    /// Do not ask for confirmation (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub destination: SecretDestination,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[arg(value_name = "ID|NAME")]
    pub key: String,
    /// How long the old secret keeps working (at most 30d).
    #[arg(long, default_value = "24h", value_parser = parse_duration_text)]
    pub grace: String,
    #[command(flatten)]
    pub destination: SecretDestination,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[arg(value_name = "ID|NAME")]
    pub key: String,
    /// How many days back.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The key to check; `-` reads it from standard input (keeps it out of the process list).
    pub key: String,
    /// Require access to this project id.
    #[arg(long)]
    pub project: Option<String>,
    /// Require this permission; repeatable.
    #[arg(long = "permission", value_name = "P")]
    pub permissions: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("legacy").required(true).args(["key", "sha256"])))]
pub struct ImportArgs {
    #[arg(long)]
    pub name: String,
    /// The legacy key itself; `-` reads it from standard input.
    #[arg(long)]
    pub key: Option<String>,
    /// Only the SHA-256 of the legacy key, in hex.
    #[arg(long)]
    pub sha256: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long = "env", value_name = "ENV")]
    pub environment: Option<String>,
    #[arg(long = "scope", value_name = "PROJECT")]
    pub scopes: Vec<String>,
    #[arg(long = "permission", value_name = "P")]
    pub permissions: Vec<String>,
    #[arg(long, value_name = "WHEN", value_parser = parse_expiry)]
    pub expires: Option<Expiry>,
}

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: WebhooksCommand,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Add an endpoint and show its signing secret once.
    Create {
        /// Where deliveries are POSTed (https, a public host). Positional: `--url` names the
        /// Keygate server.
        #[arg(value_name = "URL")]
        endpoint: String,
        #[arg(long)]
        description: Option<String>,
        /// An event to send (repeatable, e.g. --event key.revoked); none means every event.
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
    },
    /// List endpoints.
    #[command(alias = "ls")]
    List,
    /// Stop or resume deliveries to an endpoint.
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
    /// Delete an endpoint and its delivery log.
    #[command(alias = "rm")]
    Delete {
        id: String,
    },
    /// Queue a webhook.test event for an endpoint.
    Test {
        id: String,
    },
    /// An endpoint's latest deliveries: state, attempts, last answer.
    Deliveries {
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct IdentitiesArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: IdentitiesCommand,
}

#[derive(Debug, Subcommand)]
pub enum IdentitiesCommand {
    /// Create an identity for one of your customers.
    Create {
        /// Your id for the customer, unique in the workspace.
        #[arg(long)]
        external_id: String,
        #[arg(long)]
        name: Option<String>,
        /// Metadata as KEY=VALUE; repeatable.
        #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_pair)]
        metadata: Vec<(String, String)>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List identities, newest first.
    #[command(alias = "ls")]
    List {
        /// Follow pagination to the last page.
        #[arg(long)]
        all: bool,
    },
    /// Show one identity.
    Show {
        #[arg(value_name = "ID|EXTERNAL_ID")]
        identity: String,
    },
    /// Change an identity; only the fields given change.
    Update {
        #[arg(value_name = "ID|EXTERNAL_ID")]
        identity: String,
        #[arg(long)]
        external_id: Option<String>,
        /// A new name ("" removes it).
        #[arg(long)]
        name: Option<String>,
        /// Remove every limit of the identity.
        #[arg(long)]
        clear_limits: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Delete an identity that no key belongs to any more.
    #[command(alias = "rm")]
    Delete {
        #[arg(value_name = "ID|EXTERNAL_ID")]
        identity: String,
    },
    /// The usage of the identity's keys, per key.
    Usage {
        #[arg(value_name = "ID|EXTERNAL_ID")]
        identity: String,
        /// The last N UTC days, today included (1–366).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
    },
}

#[derive(Debug, Args)]
pub struct ProjectsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: ProjectsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// Create a project.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List projects.
    #[command(alias = "ls")]
    List,
    /// Show one project.
    Show {
        #[arg(value_name = "ID|NAME")]
        project: String,
    },
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: MembersCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Owner,
    Editor,
    Viewer,
    /// Verifies keys and meters usage; cannot read or change keys.
    Service,
    /// Reports leaked keys and nothing else: the token for a secret scanner.
    Reporter,
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Add a member and show their management token once.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// List members.
    #[command(alias = "ls")]
    List,
    /// Remove a member; their token stops working at once.
    #[command(alias = "rm")]
    Remove {
        #[arg(value_name = "ID")]
        member: String,
        /// Do not ask for confirmation (for scripts).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only entries about this key (id or name).
    #[arg(long, value_name = "ID|NAME")]
    pub key: Option<String>,
    /// Only entries by this member id.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action, e.g. key.revoke.
    #[arg(long)]
    pub action: Option<String>,
    /// Entries since a time: a duration back (24h, 7d), a date or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<String>,
    /// Entries until a time: a duration back, a date or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub until: Option<String>,
    /// At most this many entries.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct WorkspaceArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: WorkspaceCommand,
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Show the workspace and its policies.
    Show,
    /// Change the workspace's name or policies (owners only).
    Update {
        #[arg(long)]
        name: Option<String>,
        /// At most one active key per environment: creating a second is refused (rotate the
        /// active one instead); turning this on is refused while an environment has two.
        #[arg(long, value_name = "BOOL")]
        single_active_key: Option<bool>,
        /// Default requests per minute for keys without their own rate limit.
        #[arg(long, value_name = "N")]
        default_rpm: Option<u64>,
        /// Credit balance in USD, or `none` for no credit limit.
        #[arg(long, value_name = "USD|none", value_parser = parse_balance)]
        credit_balance: Option<String>,
        /// Send a credits.low webhook event when the remaining credit falls to this many USD,
        /// or `none` to send none.
        #[arg(long, value_name = "USD|none", value_parser = parse_balance)]
        credits_low_threshold: Option<String>,
        /// What a reported leak does to a key: revoke (the default), disable, or notify.
        #[arg(long, value_enum)]
        leak_policy: Option<LeakPolicyArg>,
        /// The prefix of keys issued from now on (2 to 8 lowercase letters or digits,
        /// starting with a letter); keys issued before keep working.
        #[arg(long, value_name = "PREFIX")]
        key_prefix: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LeakPolicyArg {
    Revoke,
    Disable,
    Notify,
}

/// What `--expires` means, decided when the command line is parsed so a typo is a usage
/// error (exit 2) before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// `expires_in`: "never", "30d", …
    In(String),
    /// `expires_at`: an RFC 3339 time.
    At(String),
}

pub fn parse_expiry(text: &str) -> Result<Expiry, String> {
    let text = text.trim();
    if text == "never" {
        return Ok(Expiry::In("never".into()));
    }
    if keygate_core::expiry::parse_duration(text).is_ok() {
        return Ok(Expiry::In(text.into()));
    }
    parse_time(text).map(Expiry::At).ok_or_else(|| {
        format!("{text:?}: use 30d, 90d, 1y, never, a date (2027-01-31) or an RFC 3339 time")
    })
}

/// A bare date is midnight UTC; anything else must be RFC 3339.
fn parse_time(text: &str) -> Option<String> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(format!("{}T00:00:00Z", date.format("%Y-%m-%d")));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.to_rfc3339())
}

/// `--since 24h` means 24 hours ago; a date or time is taken as given.
fn parse_since(text: &str) -> Result<String, String> {
    if let Ok(d) = keygate_core::expiry::parse_duration(text) {
        return Ok((chrono::Utc::now() - d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    parse_time(text.trim()).ok_or_else(|| {
        format!("{text:?}: use a duration back (24h, 7d), a date or an RFC 3339 time")
    })
}

/// A Redis namespace is part of every key name: 1–64 ASCII letters, digits, `_` or `-`, so it
/// can hold no `:` or hash-tag brace that would change the key layout.
fn parse_redis_namespace(text: &str) -> Result<String, String> {
    let valid = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(text.to_owned())
    } else {
        Err("1 to 64 ASCII letters, digits, `_` or `-`".to_owned())
    }
}

fn parse_retention(text: &str) -> Result<std::time::Duration, String> {
    keygate_core::expiry::parse_duration(text)
        .map_err(|e| e.to_string())?
        .to_std()
        .map_err(|_| format!("{text:?}: the retention must be positive"))
}

fn parse_duration_text(text: &str) -> Result<String, String> {
    keygate_core::expiry::parse_duration(text)
        .map(|_| text.trim().to_string())
        .map_err(|e| e.to_string())
}

fn parse_dollars(text: &str) -> Result<String, String> {
    keygate_core::Micros::parse_dollars(text)
        .map(|m| m.to_string())
        .map_err(|e| e.to_string())
}

fn parse_balance(text: &str) -> Result<String, String> {
    if text.trim() == "none" {
        Ok("none".into())
    } else {
        parse_dollars(text)
    }
}

fn parse_rate_window(text: &str) -> Result<(u64, String), String> {
    let bad = || format!("{text:?}: use LIMIT/WINDOW, e.g. 1000/1h or 10/1s");
    let (limit, window) = text.split_once('/').ok_or_else(bad)?;
    let limit: u64 = limit.trim().parse().map_err(|_| bad())?;
    keygate_core::expiry::parse_duration(window).map_err(|_| bad())?;
    Ok((limit, window.trim().to_string()))
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{text:?}: use KEY=VALUE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn expiry_forms() {
        assert_eq!(parse_expiry("90d"), Ok(Expiry::In("90d".into())));
        assert_eq!(parse_expiry("never"), Ok(Expiry::In("never".into())));
        assert_eq!(
            parse_expiry("2027-01-31"),
            Ok(Expiry::At("2027-01-31T00:00:00Z".into()))
        );
        assert_eq!(
            parse_expiry("2027-01-31T10:00:00+02:00"),
            Ok(Expiry::At("2027-01-31T10:00:00+02:00".into()))
        );
        assert!(parse_expiry("soon").is_err());
    }

    #[test]
    fn rate_windows_and_money() {
        assert_eq!(parse_rate_window("1000/1h"), Ok((1000, "1h".into())));
        assert!(parse_rate_window("1000").is_err());
        assert_eq!(parse_dollars("1.5"), Ok("1.50".into()));
        assert!(parse_dollars("-1").is_err());
    }
}
