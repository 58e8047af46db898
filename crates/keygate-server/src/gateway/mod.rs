//! Gateway mode: Keygate in front of an API, answering for it whether a key may make a request.
//!
//! Two faces over one pipeline. [`proxy`] forwards any HTTP request under a configured prefix
//! to an upstream, with the customer's key stripped and the key's identity added as headers.
//! [`openai`] serves the OpenAI wire format (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`, `/v1/models`) over configured providers, choosing one by the key's
//! routing rule ([`routing`]) and charging the tokens and cost the provider reports
//! ([`metering`]).
//!
//! Neither copies a verification step: both call [`crate::pipeline::verify_route`] with the
//! workspaces the route (or `[ai]`) names in the config — a key of any other workspace is
//! refused `forbidden` — so gateway mode refuses exactly what verify mode refuses, with the
//! same codes, and answers the refusal itself. Bodies stream both ways;
//! nothing is buffered whole except an AI request body, which must be read to pick a model.

pub mod config;
pub mod metering;
pub mod openai;
pub mod proxy;
pub mod routing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, HeaderName};
use axum::routing::{any, get, post};
use axum::Router;
use keygate_core::model::KeyMatch;
use keygate_core::routing::RoutingRule;
use keygate_core::{Denial, Micros};

use crate::cache::{CoherentCache, Owned};
use crate::state::AppState;
use crate::usage::UsageEvent;

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
            .map_err(|e| ConfigError::Invalid(format!("cannot build the HTTP client: {e}")))?;
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
        router = router
            .route("/v1/chat/completions", post(openai::chat_completions))
            .route("/v1/completions", post(openai::completions))
            .route("/v1/embeddings", post(openai::embeddings))
            .route("/v1/models", get(openai::list_models));
    }
    router
}

/// The customer's key: `Authorization: Bearer <key>`, else `x-api-key: <key>`.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    bearer.or_else(|| {
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

/// The client's address, when the server was started with connection info.
pub(crate) fn source_ip(extensions: &axum::http::Extensions) -> Option<String> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// What to record about one gateway request once its outcome is known.
#[derive(Debug, Clone)]
pub(crate) struct UsageContext {
    pub request_id: String,
    pub operation: String,
    pub project: Option<String>,
    pub source_ip: Option<String>,
    pub key_display: Option<String>,
}

impl UsageContext {
    /// Hands the event to the usage recorder. Requests whose key was never identified
    /// (missing, malformed, unknown) belong to no workspace in gateway mode and are not
    /// recorded here.
    pub(crate) fn record(
        &self,
        state: &AppState,
        found: Option<&KeyMatch>,
        denial: Option<Denial>,
        tokens: u64,
        cost: Micros,
    ) {
        let Some(found) = found else { return };
        state.usage.record(UsageEvent {
            request_id: self.request_id.clone(),
            workspace_id: found.key.workspace_id.clone(),
            key_id: Some(found.key.id.clone()),
            key_display: self.key_display.clone(),
            at: state.clock.now(),
            operation: self.operation.clone(),
            project: self.project.clone(),
            outcome: denial.map_or("valid", |d| d.code()),
            tokens,
            cost,
            source_ip: self.source_ip.clone(),
        });
    }
}
