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

use keygate_core::Micros;
use serde::Deserialize;

pub use crate::pipeline::Workspaces;

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
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

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

/// Paths of the management API and the AI gateway. A proxy prefix may not equal, contain or
/// fall under any of them, so the gateway can never shadow a management route.
const RESERVED: &[&str] = &[
    "/v1/keys",
    "/v1/projects",
    "/v1/members",
    "/v1/me",
    "/v1/workspace",
    "/v1/usage",
    "/v1/audit",
    "/v1/reservations",
    "/v1/routing-rules",
    "/v1/chat",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/dashboard",
];

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
            let checked = check_route(route).map_err(|e| invalid(format!("{name}: {e}")))?;
            if proxy.iter().any(|r| r.prefix == checked.prefix) {
                return Err(invalid(format!(
                    "[[proxy]] #{}: prefix {} is configured twice",
                    i + 1,
                    checked.prefix
                )));
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

fn check_route(route: ProxyRouteFile) -> Result<ProxyRoute, String> {
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
fn check_workspaces(file: Option<WorkspacesFile>) -> Result<Workspaces, String> {
    let example = "name the workspaces whose keys may use it, e.g. workspaces = [\"ws_…\"], \
                   or write workspaces = \"*\" for a route shared by every workspace";
    let ids = match file {
        None => return Err(format!("`workspaces` is missing: {example}")),
        Some(WorkspacesFile::Word(word)) if word.trim() == "*" => return Ok(Workspaces::Any),
        Some(WorkspacesFile::Word(word)) => {
            return Err(format!(
                "workspaces = {word:?} is not valid: write \"*\" or a list, e.g. [{word:?}]"
            ))
        }
        Some(WorkspacesFile::List(ids)) => ids,
    };
    if ids.iter().any(|id| id.trim() == "*") {
        return if ids.len() == 1 {
            Ok(Workspaces::Any)
        } else {
            Err("workspaces mixes \"*\" with workspace ids: write one or the other".into())
        };
    }
    if ids.is_empty() {
        return Err(format!("workspaces = [] admits nobody: {example}"));
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
            return Err(format!(
                "{id:?} in workspaces is not a workspace id (ws_ and letters, digits, _ or -)"
            ));
        }
        if !checked.contains(&id) {
            checked.push(id);
        }
    }
    Ok(Workspaces::Listed(checked))
}

/// A prefix is a literal path (our router would read `{…}` and `*` as patterns) that does
/// not overlap a management or AI route.
fn check_prefix(prefix: &str) -> Result<(), String> {
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
        return Err(format!(
            "prefix {prefix:?} must be a literal path such as \"/proxy/billing\": starting with /, \
             not ending with /, no . or .. segments, letters, digits and -._~ only"
        ));
    }
    let under = |path: &str, parent: &str| {
        path == parent
            || path
                .strip_prefix(parent)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if let Some(taken) = RESERVED
        .iter()
        .find(|r| under(prefix, r) || under(r, prefix))
    {
        return Err(format!(
            "prefix {prefix} would shadow Keygate's own {taken}; mount the upstream elsewhere, \
             e.g. under /proxy/"
        ));
    }
    Ok(())
}

fn check_base_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| format!("upstream URL {url:?} is not valid: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(format!(
            "upstream URL {url:?} must be http:// or https:// with a host and no query"
        ));
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
        .map_err(|e| invalid(format!("[ai] {e}")))?;
    let mut providers: Vec<Provider> = Vec::new();
    for p in ai.providers {
        let here = |e: String| invalid(format!("[[ai.providers]] {:?}: {e}", p.name));
        if p.name.trim().is_empty() {
            return Err(invalid("[[ai.providers]]: every provider needs a name"));
        }
        if providers.iter().any(|q| q.name == p.name) {
            return Err(here("the name is used twice".into()));
        }
        let base_url = check_base_url(&p.base_url).map_err(here)?;
        let api_key = match &p.api_key_env {
            None => None,
            Some(var) => Some(ProviderKey(env(var).filter(|v| !v.is_empty()).ok_or_else(
                || {
                    here(format!(
                        "the environment variable {var} (api_key_env) is not set"
                    ))
                },
            )?)),
        };
        if let Some(model) = p.models.iter().find(|m| !prices.contains_key(*m)) {
            return Err(here(format!(
                "model {model:?} has no price; add [ai.prices.\"{model}\"] with input and output \
                 dollars per million tokens (\"0\" for free)"
            )));
        }
        // Requests are charged by the model actually called, so what a model is mapped to
        // needs a price too.
        if let Some((from, to)) = p.model_map.iter().find(|(_, to)| !prices.contains_key(*to)) {
            return Err(here(format!(
                "model_map sends {from:?} to {to:?}, which has no price; requests are charged by \
                 the model actually called, so add [ai.prices.\"{to}\"]"
            )));
        }
        let timeout = match p.timeout.as_deref() {
            Some(t) => parse_duration(t).map_err(here)?,
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
            .map_err(|e| invalid(format!("[ai] reservation_ttl: {e}")))?,
        max_request_bytes: ai.max_request_bytes.unwrap_or(16 * 1024 * 1024),
        permissions: ai.permissions,
        project: ai.project,
        workspaces: check_workspaces(ai.workspaces).map_err(|e| invalid(format!("[ai]: {e}")))?,
    })
}

fn duration_or(text: Option<&str>, default: Duration) -> Result<Duration, String> {
    text.map_or(Ok(default), parse_duration)
}

/// `"500ms"`, `"30s"`, `"2m"`, `"1h"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a duration such as \"500ms\", \"30s\" or \"2m\"");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1_000),
        "m" | "min" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        _ => return Err(bad()),
    };
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
    fn prefixes_cannot_shadow_the_management_api() {
        for bad in [
            "/",
            "/v1",
            "/v1/keys",
            "/v1/keys/x",
            "/v1/routing-rules",
            "/healthz",
            "/proxy/",
            "proxy",
            "/a//b",
            "/a/{id}",
            "/a/*",
            "/a/../v1/keys",
            "/proxy/.",
            "/..",
        ] {
            let text = format!(
                "[[proxy]]\nprefix = \"{bad}\"\nupstream = \"http://127.0.0.1:1\"\nworkspaces = \"*\""
            );
            assert!(GatewayConfig::parse(&text, &no_env).is_err(), "{bad}");
        }
        for good in ["/proxy/billing", "/v1/search", "/api", "/v2/keys"] {
            let text = format!(
                "[[proxy]]\nprefix = \"{good}\"\nupstream = \"http://127.0.0.1:1/base/\"\nworkspaces = \"*\""
            );
            let config = GatewayConfig::parse(&text, &no_env).expect(good);
            assert_eq!(config.proxy[0].upstream, "http://127.0.0.1:1/base");
        }
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
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5").is_err());
    }
}
