//! The gateway's config file (`keygate serve --config keygate.toml`): proxy routes, AI
//! providers and the price table. See `keygate.example.toml` at the repository root for a
//! commented example.
//!
//! The file is parsed into `*File` types that mirror it (with `deny_unknown_fields`, so a typo
//! is an error rather than a silent default) and then checked into [`GatewayConfig`], whose
//! values are valid from then on: prefixes that cannot shadow the management API, upstream
//! URLs that parse, a price for every model a provider serves, provider credentials present.
//! A config that fails any check stops `serve` with a message naming the offending entry.
//!
//! The one decision a reader must know: every proxy route and the AI gateway name the
//! workspaces whose keys they serve (`workspaces = ["ws_…"]`, or `workspaces = "*"` written out
//! for a route shared by all). There is no default, because a route spends the operator's
//! upstream or provider credentials: a route that forgot to say would be open to every tenant.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keygate_core::expiry::{split_duration, DurationUnit};
use keygate_core::Micros;
use serde::Deserialize;

/// The workspaces whose keys a gateway route (or the AI gateway) serves. The config always
/// says which: a list of ids, or `"*"` written out for a route shared by every workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workspaces {
    /// Keys of every workspace (a multi-tenant route).
    Any,
    /// Keys of these workspaces only.
    Listed(Vec<String>),
}

impl Workspaces {
    pub fn admits(&self, workspace_id: &str) -> bool {
        match self {
            Workspaces::Any => true,
            Workspaces::Listed(ids) => ids.iter().any(|id| id == workspace_id),
        }
    }
}

/// Why a gateway config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the gateway config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the gateway config is not valid TOML for Keygate: {0}")]
    Syntax(String),
    /// One entry of the file is not acceptable; `entry` names it so the message points at the
    /// line to fix (`[[proxy]] #2 (prefix "/x")`, `[ai] reservation_ttl`).
    #[error("{entry}: {problem}")]
    Entry { entry: String, problem: EntryError },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

impl ConfigError {
    /// Blames `problem` on the entry named `entry`.
    fn entry(entry: impl Into<String>) -> impl FnOnce(EntryError) -> ConfigError {
        let entry = entry.into();
        move |problem| ConfigError::Entry { entry, problem }
    }
}

/// What is wrong with one entry of the config file.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("{0:?} is not a duration such as \"500ms\", \"30s\" or \"2m\"")]
    BadDuration(String),
    #[error("`workspaces` is missing: {}", WORKSPACES_HINT)]
    WorkspacesMissing,
    #[error("workspaces = {0:?} is not valid: write \"*\" or a list, e.g. [{0:?}]")]
    WorkspacesWord(String),
    #[error("workspaces mixes \"*\" with workspace ids: write one or the other")]
    WorkspacesMixed,
    #[error("workspaces = [] admits nobody: {}", WORKSPACES_HINT)]
    WorkspacesEmpty,
    #[error("{0:?} in workspaces is not a workspace id (ws_ and letters, digits, _ or -)")]
    NotAWorkspaceId(String),
    #[error(
        "prefix {0:?} must be a literal path such as \"/proxy/billing\": starting with /, \
         not ending with /, no . or .. segments, letters, digits and -._~ only"
    )]
    PrefixNotLiteral(String),
    #[error(
        "prefix {prefix} would shadow Keygate's own {taken}; mount the upstream elsewhere, \
         e.g. under /proxy/"
    )]
    PrefixShadows { prefix: String, taken: String },
    #[error("prefix {0} is configured twice")]
    PrefixTwice(String),
    #[error("upstream URL {url:?} is not valid: {source}")]
    BadUrl {
        url: String,
        source: <reqwest::Url as std::str::FromStr>::Err,
    },
    #[error("upstream URL {0:?} must be http:// or https:// with a host and no query")]
    UrlNotHttp(String),
    #[error("every provider needs a name")]
    ProviderUnnamed,
    #[error("the name is used twice")]
    ProviderTwice,
    #[error("the environment variable {0} (api_key_env) is not set")]
    MissingEnv(String),
    #[error(
        "model {0:?} has no price; add [ai.prices.\"{0}\"] with input and output dollars per \
         million tokens (\"0\" for free)"
    )]
    Unpriced(String),
    /// Requests are charged by the model actually called, so what a model is mapped to needs a
    /// price too.
    #[error(
        "model_map sends {from:?} to {to:?}, which has no price; requests are charged by the \
         model actually called, so add [ai.prices.\"{to}\"]"
    )]
    MappedToUnpriced { from: String, to: String },
}

const WORKSPACES_HINT: &str = "name the workspaces whose keys may use it, e.g. workspaces = \
                               [\"ws_…\"], or write workspaces = \"*\" for a route shared by \
                               every workspace";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    proxy: Vec<ProxyRouteFile>,
    ai: Option<AiFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyRouteFile {
    prefix: String,
    upstream: String,
    #[serde(default = "yes")]
    strip_prefix: bool,
    #[serde(default)]
    permissions: Vec<String>,
    project: Option<String>,
    timeout: Option<String>,
    workspaces: Option<WorkspacesFile>,
}

/// `workspaces = "*"` or `workspaces = ["ws_…", …]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WorkspacesFile {
    Word(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AiFile {
    #[serde(default)]
    providers: Vec<ProviderFile>,
    #[serde(default)]
    prices: BTreeMap<String, PriceFile>,
    default_max_tokens: Option<u64>,
    timeout: Option<String>,
    reservation_ttl: Option<String>,
    max_request_bytes: Option<usize>,
    #[serde(default)]
    permissions: Vec<String>,
    project: Option<String>,
    workspaces: Option<WorkspacesFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    name: String,
    base_url: String,
    api_key_env: Option<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    model_map: BTreeMap<String, String>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    input: Micros,
    output: Micros,
}

fn yes() -> bool {
    true
}

/// The whole gateway configuration, checked.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    pub proxy: Vec<Arc<ProxyRoute>>,
    pub ai: Option<Arc<AiConfig>>,
}

/// One reverse-proxy route: requests under `prefix` go to `upstream`.
#[derive(Debug, Clone)]
pub struct ProxyRoute {
    /// `/proxy/billing`: starts with `/`, no trailing `/`.
    pub prefix: String,
    /// Base URL without a trailing `/`: `http://10.0.0.5:9000/api`.
    pub upstream: String,
    /// With `true` (the default) `/proxy/billing/x` is sent to `{upstream}/x`; with `false`
    /// to `{upstream}/proxy/billing/x`.
    pub strip_prefix: bool,
    /// Permissions the key must hold for this route.
    pub permissions: Vec<String>,
    /// The project the key's scope must include; also sent upstream as `keygate-project`.
    /// Only a project of the key's own workspace satisfies it.
    pub project: Option<String>,
    /// Longest wait for the upstream's response headers, between two chunks of its body, and
    /// for the client's request body to arrive (a stalled client gets 408).
    pub timeout: Duration,
    /// The workspaces whose keys may use this route.
    pub workspaces: Workspaces,
}

/// The AI gateway: providers and what their models cost.
#[derive(Debug, Clone)]
pub struct AiConfig {
    pub providers: Vec<Provider>,
    /// Model name → price. Every model a provider serves, and every model a `model_map` sends
    /// one to, has one: a request is priced by the model actually called upstream.
    pub prices: HashMap<String, Price>,
    /// Output tokens reserved for a request that sets no `max_tokens`.
    pub default_max_tokens: u64,
    /// How long a reservation holds if the request never finishes (process crash).
    pub reservation_ttl: Duration,
    /// Largest accepted AI request body.
    pub max_request_bytes: usize,
    pub permissions: Vec<String>,
    pub project: Option<String>,
    /// The workspaces whose keys may use the AI gateway (and so the providers' credentials).
    pub workspaces: Workspaces,
}

impl AiConfig {
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// Every model some provider serves, in config order, without repeats.
    pub fn models(&self) -> Vec<(&str, &str)> {
        let mut seen = std::collections::HashSet::new();
        self.providers
            .iter()
            .flat_map(|p| p.models.iter().map(move |m| (m.as_str(), p.name.as_str())))
            .filter(|(m, _)| seen.insert(*m))
            .collect()
    }
}

/// An upstream AI provider speaking the OpenAI wire format.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    /// Without a trailing `/`; endpoint paths (`/chat/completions`) are appended.
    pub base_url: String,
    pub api_key: Option<ProviderKey>,
    /// Requested model names this provider serves (used when a key has no routing rule).
    pub models: Vec<String>,
    /// Requested model → this provider's model name.
    pub model_map: BTreeMap<String, String>,
    pub timeout: Duration,
}

/// A provider credential. `Debug` prints nothing of it.
#[derive(Clone)]
pub struct ProviderKey(String);

impl ProviderKey {
    /// The credential itself, for the upstream's `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProviderKey(…)")
    }
}

/// Micro-dollars per one million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input: Micros,
    pub output: Micros,
}

impl Price {
    /// The cost of a request, rounded up to the next micro-dollar so that many small requests
    /// can never add up to less than they cost.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> Micros {
        let per_million = u128::from(input_tokens) * self.input.0.max(0) as u128
            + u128::from(output_tokens) * self.output.0.max(0) as u128;
        let micros = per_million.div_ceil(1_000_000);
        Micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

impl GatewayConfig {
    /// Reads and checks a config file. `env` looks up the environment variables that hold
    /// provider credentials (the binary passes `std::env::var`; tests pass a map).
    /// Refuses a proxy prefix that equals, contains or falls under one of Keygate's own paths
    /// (`reserved`, from the router's table), so the gateway can never shadow a management
    /// route.
    pub fn check_reserved(&self, reserved: &[String]) -> Result<(), ConfigError> {
        let under = |path: &str, parent: &str| {
            path == parent
                || path
                    .strip_prefix(parent)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        for route in &self.proxy {
            let prefix = route.prefix.as_str();
            if let Some(taken) = reserved
                .iter()
                .find(|r| under(prefix, r) || under(r, prefix))
            {
                return Err(ConfigError::entry("[[proxy]]")(EntryError::PrefixShadows {
                    prefix: prefix.to_owned(),
                    taken: taken.clone(),
                }));
            }
        }
        Ok(())
    }

    pub fn from_file(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, env)
    }

    /// Parses and checks config text.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file: FileConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let mut proxy: Vec<Arc<ProxyRoute>> = Vec::new();
        for (i, route) in file.proxy.into_iter().enumerate() {
            let name = format!("[[proxy]] #{} (prefix {:?})", i + 1, route.prefix);
            let checked = check_route(route).map_err(ConfigError::entry(name))?;
            if proxy.iter().any(|r| r.prefix == checked.prefix) {
                return Err(ConfigError::entry(format!("[[proxy]] #{}", i + 1))(
                    EntryError::PrefixTwice(checked.prefix),
                ));
            }
            proxy.push(Arc::new(checked));
        }
        let ai = file
            .ai
            .map(|ai| check_ai(ai, env))
            .transpose()?
            .map(Arc::new);
        Ok(GatewayConfig { proxy, ai })
    }
}

fn check_route(route: ProxyRouteFile) -> Result<ProxyRoute, EntryError> {
    let prefix = route.prefix.trim().to_owned();
    check_prefix(&prefix)?;
    let upstream = check_base_url(&route.upstream)?;
    Ok(ProxyRoute {
        prefix,
        upstream,
        strip_prefix: route.strip_prefix,
        permissions: route.permissions,
        project: route.project,
        timeout: duration_or(route.timeout.as_deref(), Duration::from_secs(30))?,
        workspaces: check_workspaces(route.workspaces)?,
    })
}

/// A route names its workspaces explicitly: ids that look like ids, or `"*"` alone.
fn check_workspaces(file: Option<WorkspacesFile>) -> Result<Workspaces, EntryError> {
    let ids = match file {
        None => return Err(EntryError::WorkspacesMissing),
        Some(WorkspacesFile::Word(word)) if word.trim() == "*" => return Ok(Workspaces::Any),
        Some(WorkspacesFile::Word(word)) => return Err(EntryError::WorkspacesWord(word)),
        Some(WorkspacesFile::List(ids)) => ids,
    };
    if ids.iter().any(|id| id.trim() == "*") {
        return if ids.len() == 1 {
            Ok(Workspaces::Any)
        } else {
            Err(EntryError::WorkspacesMixed)
        };
    }
    if ids.is_empty() {
        return Err(EntryError::WorkspacesEmpty);
    }
    let mut checked: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        let id = id.trim().to_owned();
        let plausible = id.len() <= 64
            && id.strip_prefix("ws_").is_some_and(|rest| {
                !rest.is_empty()
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if !plausible {
            return Err(EntryError::NotAWorkspaceId(id));
        }
        if !checked.contains(&id) {
            checked.push(id);
        }
    }
    Ok(Workspaces::Listed(checked))
}

/// A prefix is a literal path (our router would read `{…}` and `*` as patterns) that does
/// not overlap a management or AI route.
fn check_prefix(prefix: &str) -> Result<(), EntryError> {
    let literal = prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
    let dot_segment = prefix.split('/').any(|s| s == "." || s == "..");
    if !prefix.starts_with('/')
        || prefix.len() < 2
        || prefix.ends_with('/')
        || prefix.contains("//")
        || dot_segment
        || !literal
    {
        return Err(EntryError::PrefixNotLiteral(prefix.to_owned()));
    }
    Ok(())
}

fn check_base_url(url: &str) -> Result<String, EntryError> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|source| EntryError::BadUrl {
        url: url.to_owned(),
        source,
    })?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(EntryError::UrlNotHttp(url.to_owned()));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

fn check_ai(ai: AiFile, env: &dyn Fn(&str) -> Option<String>) -> Result<AiConfig, ConfigError> {
    let mut prices = HashMap::new();
    for (model, price) in ai.prices {
        prices.insert(
            model,
            Price {
                input: price.input,
                output: price.output,
            },
        );
    }
    let default_timeout = duration_or(ai.timeout.as_deref(), Duration::from_secs(120))
        .map_err(ConfigError::entry("[ai] timeout"))?;
    let mut providers: Vec<Provider> = Vec::new();
    for p in ai.providers {
        let here = |e: EntryError| ConfigError::entry(format!("[[ai.providers]] {:?}", p.name))(e);
        if p.name.trim().is_empty() {
            return Err(ConfigError::entry("[[ai.providers]]")(
                EntryError::ProviderUnnamed,
            ));
        }
        if providers.iter().any(|q| q.name == p.name) {
            return Err(here(EntryError::ProviderTwice));
        }
        let base_url = check_base_url(&p.base_url).map_err(here)?;
        let api_key = match &p.api_key_env {
            None => None,
            Some(var) => Some(ProviderKey(
                env(var)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| here(EntryError::MissingEnv(var.clone())))?,
            )),
        };
        if let Some(model) = p.models.iter().find(|m| !prices.contains_key(*m)) {
            return Err(here(EntryError::Unpriced(model.clone())));
        }
        if let Some((from, to)) = p.model_map.iter().find(|(_, to)| !prices.contains_key(*to)) {
            return Err(here(EntryError::MappedToUnpriced {
                from: from.clone(),
                to: to.clone(),
            }));
        }
        let timeout = match p.timeout.as_deref() {
            Some(t) => parse_timeout(t).map_err(here)?,
            None => default_timeout,
        };
        providers.push(Provider {
            name: p.name,
            base_url,
            api_key,
            models: p.models,
            model_map: p.model_map,
            timeout,
        });
    }
    Ok(AiConfig {
        providers,
        prices,
        default_max_tokens: ai.default_max_tokens.unwrap_or(4096),
        reservation_ttl: duration_or(ai.reservation_ttl.as_deref(), Duration::from_secs(600))
            .map_err(ConfigError::entry("[ai] reservation_ttl"))?,
        max_request_bytes: ai.max_request_bytes.unwrap_or(16 * 1024 * 1024),
        permissions: ai.permissions,
        project: ai.project,
        workspaces: check_workspaces(ai.workspaces).map_err(ConfigError::entry("[ai]"))?,
    })
}

fn duration_or(text: Option<&str>, default: Duration) -> Result<Duration, EntryError> {
    text.map_or(Ok(default), parse_timeout)
}

/// `"500ms"`, `"30s"`, `"2m"`, `"1h"`: the gateway's durations, milliseconds to hours, written
/// like every duration (see [`split_duration`]).
fn parse_timeout(text: &str) -> Result<Duration, EntryError> {
    let bad = || EntryError::BadDuration(text.trim().to_owned());
    let (n, unit) = split_duration(text).ok_or_else(bad)?;
    if matches!(
        unit,
        DurationUnit::Days | DurationUnit::Weeks | DurationUnit::Years
    ) {
        return Err(bad());
    }
    let millis = n.saturating_mul(unit.millis());
    if millis == 0 {
        return Err(bad());
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn typos_and_unpriced_models_are_errors() {
        let typo = "[[proxy]]\nprefix = \"/p\"\nupstream = \"http://h\"\ntimout = \"1s\"";
        assert!(matches!(
            GatewayConfig::parse(typo, &no_env),
            Err(ConfigError::Syntax(_))
        ));
        let unpriced =
            "[ai]\n[[ai.providers]]\nname = \"a\"\nbase_url = \"http://h/v1\"\nmodels = [\"m\"]";
        let err = GatewayConfig::parse(unpriced, &no_env).expect_err("unpriced");
        assert!(err.to_string().contains("no price"), "{err}");
        let missing_env = "[ai]\n[[ai.providers]]\nname = \"a\"\nbase_url = \"http://h/v1\"\napi_key_env = \"NOPE\"";
        let err = GatewayConfig::parse(missing_env, &no_env).expect_err("env");
        assert!(err.to_string().contains("NOPE"), "{err}");
    }

    #[test]
    fn prices_are_exact_and_round_up() {
        let text = "[ai]\nworkspaces = \"*\"\n[ai.prices.m]\ninput = \"0.15\"\noutput = 0.6\n";
        let config = GatewayConfig::parse(text, &no_env).expect("config");
        let price = config.ai.expect("ai").prices["m"];
        assert_eq!(price.input, Micros(150_000));
        assert_eq!(price.output, Micros(600_000));
        assert_eq!(price.cost(1_000_000, 1_000_000), Micros(750_000));
        assert_eq!(price.cost(1, 0), Micros(1));
        assert_eq!(price.cost(0, 0), Micros(0));
    }

    #[test]
    fn the_example_config_at_the_repository_root_is_valid() {
        let text = include_str!("../../../../keygate.example.toml");
        let env = |name: &str| Some(format!("value of {name}"));
        let config = GatewayConfig::parse(text, &env).expect("keygate.example.toml");
        assert_eq!(config.proxy.len(), 2);
        let ai = config.ai.expect("ai");
        assert_eq!(ai.providers.len(), 2);
        assert!(format!("{:?}", ai.providers[0]).contains("ProviderKey(…)"));
    }

    #[test]
    fn durations_take_milliseconds() {
        assert_eq!(
            parse_timeout("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_timeout("2m").ok(), Some(Duration::from_secs(120)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("5").is_err());
        assert!(parse_timeout("1d").is_err());
    }
}
