//! The gateway's runtime, which the state holds: its config, one pooled HTTP client for every
//! upstream, and the routing-rule cache. Below the state, so it takes the store, not the
//! state.

use std::sync::Arc;
use std::time::Duration;

use keygate_core::model::KeyMatch;
use keygate_core::routing::RoutingRule;
use keygate_store::Store;

use super::config::{ConfigError, GatewayConfig};
use crate::cache::{CoherentCache, Lease, Owned};
use crate::error::ApiError;

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
    /// `rule_ttl` bounds how long a rule changed on another node can go unseen here when the
    /// nodes share no Redis; with Redis, `lease` is the node's (see `invalidation`).
    pub fn new(
        config: GatewayConfig,
        rule_ttl: Duration,
        lease: Arc<Lease>,
    ) -> Result<Self, ConfigError> {
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
            rules: CoherentCache::new(10_000, rule_ttl, lease),
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
        store: &dyn Store,
        found: &KeyMatch,
    ) -> Result<Option<Arc<RoutingRule>>, ApiError> {
        let ws = found.key.workspace_id.as_str();
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
