//! Gateway mode: Keygate in front of an API, answering for it whether a key may make a request.
//!
//! Two faces over one pipeline. [`proxy`] forwards any HTTP request under a configured prefix
//! to an upstream, with the customer's key stripped and the key's identity added as headers.
//! [`openai`] serves the OpenAI wire format (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`, `/v1/models`) over configured providers, choosing one by the key's
//! routing rule ([`routing`]) and charging the tokens and cost the provider reports
//! ([`metering`]).
//!
//! Neither copies a verification step: both call [`crate::pipeline::check`] — the function
//! verify mode calls — at a [`crate::pipeline::Door::Route`] holding the workspaces the route
//! (or `[ai]`) names in the config, so a key of any other workspace is refused `forbidden`.
//! The check records the request's usage and builds its `RateLimit-*` headers; a handler only
//! answers a refusal with [`crate::pipeline::Checked::admitted`], so gateway mode refuses
//! exactly what verify mode refuses, with the same codes and headers. The one exception to
//! "recorded by the check" is an admitted AI request: it is recorded by its settlement
//! ([`metering`]), once its usage is known. Bodies stream both ways; nothing is buffered whole
//! except an AI request body, which must be read to pick a model.

pub mod config;
pub mod metering;
pub mod openai;
mod openapi;
pub mod proxy;
pub mod routing;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderName};
use axum::routing::any;
use axum::Router;
use keygate_core::model::KeyMatch;
use keygate_core::routing::RoutingRule;

use crate::cache::{CoherentCache, Owned};
use crate::extract::bearer_token;
use crate::state::AppState;

pub use config::{ConfigError, GatewayConfig};

/// The gateway's runtime: its config, one pooled HTTP client for every upstream, and a cache
/// of routing rules so the hot path does not read them from the store.
pub struct Gateway {
    pub config: GatewayConfig,
    pub(crate) client: reqwest::Client,
    /// `rr_…` → rule, and `default:{workspace}` → the workspace's default rule.
    rules: CoherentCache<String, RoutingRule>,
}

impl Owned for RoutingRule {
    fn owner(&self) -> Option<String> {
        Some(self.id.clone())
    }
}

impl Gateway {
    /// `rule_ttl` bounds how long a rule changed on another node can go unseen here.
    pub fn new(config: GatewayConfig, rule_ttl: Duration) -> Result<Self, ConfigError> {
        // Redirects are the client's business: a proxy that followed them would change the
        // answer. System proxy variables are ignored so an upstream on loopback is reached
        // directly, whatever the environment of the server.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(ConfigError::HttpClient)?;
        Ok(Self {
            config,
            client,
            rules: CoherentCache::new(10_000, rule_ttl),
        })
    }

    /// Forgets what is cached about a workspace's rules after one of them changed.
    pub async fn rules_changed(&self, workspace_id: &str, rule_id: &str) {
        self.rules.invalidate_owner(rule_id).await;
        self.rules
            .invalidate(&format!("default:{workspace_id}"))
            .await;
    }

    /// Forgets every cached rule (after this node may have missed other nodes' changes).
    pub async fn clear_rules(&self) {
        self.rules.clear().await;
    }

    /// The rule that routes a key's AI requests: its own, else the workspace default, else
    /// none. A rule deleted since the key was cached counts as none.
    pub(crate) async fn rule_for(
        &self,
        state: &AppState,
        found: &KeyMatch,
    ) -> Result<Option<Arc<RoutingRule>>, crate::error::ApiError> {
        let ws = found.key.workspace_id.as_str();
        let store = &state.store;
        if let Some(id) = &found.key.routing_rule_id {
            let own = self
                .rules
                .get_or_load(id, || async move {
                    match store.routing_rule(ws, id).await {
                        Ok(rule) => Ok(Some(rule)),
                        Err(keygate_store::StoreError::NotFound) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            if own.is_some() {
                return Ok(own);
            }
        }
        Ok(self
            .rules
            .get_or_load(&format!("default:{ws}"), || async move {
                store.default_routing_rule(ws).await
            })
            .await?)
    }
}

/// The OpenAI-compatible endpoints the AI gateway serves when `[ai]` is configured.
pub const AI_PATHS: [&str; 4] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
];

/// The AI endpoints, each as utoipa-axum makes it of its handler: the method, path and
/// schemas of its `#[utoipa::path]`, and the handler. The router and the OpenAPI document are
/// both built from this list, so they cannot disagree (a test checks it against
/// [`AI_PATHS`]).
fn ai_endpoints() -> [utoipa_axum::router::UtoipaMethodRouter<AppState>; 4] {
    use utoipa_axum::routes;
    [
        routes!(openai::chat_completions),
        routes!(openai::completions),
        routes!(openai::embeddings),
        routes!(openai::list_models),
    ]
}

/// Adds the AI endpoints to the OpenAPI document when the AI gateway serves them (they take
/// a customer's key, not a management token), with the answers only the gateway gives, and
/// narrows routing rules to the providers and priced models of the config.
pub fn document(
    gateway: &Gateway,
    api: &mut utoipa::openapi::OpenApi,
    schemas: &mut Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )>,
) {
    if let Some(ai) = &gateway.config.ai {
        openapi::document(ai, ai_endpoints(), api, schemas);
    }
}

/// The gateway's routes, to be merged into the application's router: every configured proxy
/// prefix, and the AI endpoints when providers are configured.
pub fn routes(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    let Some(gateway) = &state.gateway else {
        return router;
    };
    for route in &gateway.config.proxy {
        let exact = route.clone();
        let nested = route.clone();
        router = router
            .route(
                &route.prefix,
                any(move |state, request| proxy::forward(state, exact.clone(), request)),
            )
            .route(
                &format!("{}/{{*rest}}", route.prefix),
                any(move |state, request| proxy::forward(state, nested.clone(), request)),
            );
    }
    if gateway.config.ai.is_some() {
        for (_, paths, handler) in ai_endpoints() {
            for path in paths.paths.keys() {
                router = router.route(path, handler.clone());
            }
        }
    }
    router
}

/// The customer's key: `Authorization: Bearer <key>`, else `x-api-key: <key>`.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    bearer_token(headers).or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    })
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus `host`,
/// which the client sets for the upstream it connects to.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}
