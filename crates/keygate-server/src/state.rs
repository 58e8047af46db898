//! The state every handler shares: store, limiter, server secret, clock, caches, metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keygate_core::model::{Identity, KeyMatch, Member, Project, Workspace};
use keygate_core::{Clock, KeyHash, ServerSecret};
use keygate_limits::Limiter;
use keygate_store::Store;

use crate::cache::{CoherentCache, Owned};
use crate::error::ApiError;
use crate::gateway::runtime::Gateway;
use crate::invalidation::{Broadcaster, Caches, Change};
use crate::last_used::LastUsed;
use crate::metrics::Metrics;
use crate::usage::{UsageRecorder, UsageSettings};
use crate::webhooks::{DeliveryCounts, TargetPolicy, ThresholdWatch, WebhookTiming};

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub store: Arc<dyn Store>,
    pub limiter: Arc<dyn Limiter>,
    pub secret: ServerSecret,
    pub clock: Arc<dyn Clock>,
    /// Secret hash → the keys holding it, for verification.
    pub keys: CoherentCache<KeyHash, KeyMatches>,
    /// Management token hash → member.
    pub members: CoherentCache<KeyHash, Member>,
    pub workspaces: CoherentCache<String, Workspace>,
    /// Identity id → the identity, whose limits a key's verification checks too.
    pub identities: CoherentCache<String, Identity>,
    /// (workspace id, project id) → the project, so a project requirement is checked against
    /// the key's own workspace without a store round trip (see `pipeline.rs`).
    pub projects: CoherentCache<(String, String), Project>,
    /// Workspace id → whether it has imported legacy keys.
    pub legacy: CoherentCache<String, LegacyKeys>,
    pub metrics: Metrics,
    pub broadcaster: Arc<Broadcaster>,
    pub last_used: Arc<LastUsed>,
    pub usage: Arc<UsageRecorder>,
    pub max_body_bytes: usize,
    /// Gateway mode's config and upstream client; `None` when no config file was given.
    pub gateway: Option<Arc<Gateway>>,
    /// Where webhooks may be sent.
    pub webhook_targets: TargetPolicy,
    pub webhook_counts: Arc<DeliveryCounts>,
    /// How often keys about to expire are looked for, and when a failing endpoint is disabled.
    pub webhook_timing: WebhookTiming,
    /// Turns admitted requests' limits into `limit.threshold` and `credits.low` events.
    pub thresholds: ThresholdWatch,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// Parts of the state the caller picks; the rest has defaults.
pub struct StateParts {
    pub store: Arc<dyn Store>,
    pub limiter: Arc<dyn Limiter>,
    pub secret: ServerSecret,
    pub clock: Arc<dyn Clock>,
    pub key_cache_ttl: Duration,
    pub max_body_bytes: usize,
    pub broadcaster: Broadcaster,
    /// How usage is recorded (buffer, flush interval, request-log retention, on/off).
    pub usage: UsageSettings,
    pub gateway: Option<Gateway>,
    pub webhook_targets: TargetPolicy,
    pub webhook_timing: WebhookTiming,
}

impl AppState {
    pub fn new(parts: StateParts) -> Self {
        let ttl = parts.key_cache_ttl;
        let lease = parts.broadcaster.lease();
        Self(Arc::new(AppInner {
            last_used: Arc::new(LastUsed::new(parts.store.clone())),
            usage: Arc::new(UsageRecorder::new(parts.store.clone(), parts.usage)),
            store: parts.store,
            limiter: parts.limiter,
            secret: parts.secret,
            clock: parts.clock,
            keys: CoherentCache::new(200_000, ttl, lease.clone()),
            members: CoherentCache::new(10_000, ttl, lease.clone()),
            workspaces: CoherentCache::new(10_000, ttl, lease.clone()),
            identities: CoherentCache::new(100_000, ttl, lease.clone()),
            projects: CoherentCache::new(10_000, ttl, lease.clone()),
            legacy: CoherentCache::new(10_000, ttl, lease.clone()),
            metrics: Metrics::default(),
            broadcaster: Arc::new(parts.broadcaster),
            max_body_bytes: parts.max_body_bytes,
            gateway: parts.gateway.map(Arc::new),
            webhook_targets: parts.webhook_targets,
            webhook_counts: Arc::default(),
            webhook_timing: parts.webhook_timing,
            thresholds: ThresholdWatch::default(),
        }))
    }

    /// An identity by id, from the cache; `None` if it is gone (a key names an identity only
    /// while it exists, so this is a race with its deletion, and the key counts alone).
    pub async fn identity(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<Arc<Identity>>, ApiError> {
        let store = &self.store;
        let found = self
            .identities
            .get_or_load(&id.to_owned(), || async move {
                match store.identity(workspace_id, id).await {
                    Ok(identity) => Ok(Some(identity)),
                    Err(keygate_store::StoreError::NotFound) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(found.filter(|identity| identity.workspace_id == workspace_id))
    }

    /// A workspace by id, from the cache.
    pub async fn workspace(&self, id: &str) -> Result<Arc<Workspace>, ApiError> {
        let store = &self.store;
        let found = self
            .workspaces
            .get_or_load(&id.to_owned(), || async move {
                match store.workspace(id).await {
                    Ok(ws) => Ok(Some(ws)),
                    Err(keygate_store::StoreError::NotFound) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        found.ok_or(ApiError::NotFound("workspace"))
    }

    /// Makes a committed change visible to the very next request on this node, and tells the
    /// other nodes (see `invalidation`). Run as a task of its own and awaited: the change is
    /// committed, so telling the nodes must finish even if the client hangs up and its
    /// request's future is dropped.
    pub async fn changed(&self, change: Change) {
        let state = self.clone();
        let told = tokio::spawn(async move {
            state.apply_locally(&change).await;
            state.broadcaster.publish(&change).await;
        });
        if let Err(e) = told.await {
            tracing::error!(error = %e, "telling the nodes about a change failed");
        }
    }

    /// Drops what a change makes stale from this node's caches.
    pub async fn apply_locally(&self, change: &Change) {
        match change {
            Change::Key(id) => self.keys.invalidate_owner(id).await,
            Change::Member(id) => self.members.invalidate_owner(id).await,
            Change::Workspace(id) => self.workspaces.invalidate_owner(id).await,
            Change::Identity(id) => self.identities.invalidate_owner(id).await,
            Change::LegacyKeys(id) => self.legacy.invalidate_owner(id).await,
            Change::Hash(hash) => self.keys.invalidate(hash).await,
            Change::RoutingRule {
                workspace_id,
                rule_id,
            } => {
                if let Some(gateway) = &self.gateway {
                    gateway.rules_changed(workspace_id, rule_id).await;
                }
            }
        }
    }

    /// Drops every cached entry (after missing other nodes' messages).
    pub async fn clear_caches(&self) {
        self.keys.clear().await;
        self.members.clear().await;
        self.workspaces.clear().await;
        self.identities.clear().await;
        self.projects.clear().await;
        self.legacy.clear().await;
        if let Some(gateway) = &self.gateway {
            gateway.clear_rules().await;
        }
    }
}

/// Other nodes' changes reach this node's caches through the state (see `invalidation.rs`).
impl Caches for AppState {
    fn apply(&self, change: &Change) -> impl Future<Output = ()> + Send {
        self.apply_locally(change)
    }

    fn clear(&self) -> impl Future<Output = ()> + Send {
        self.clear_caches()
    }
}

/// The keys one secret hash belongs to: one for a native key; for an imported legacy key,
/// one per workspace that imported it (a hash is unique per workspace only, so that an import
/// cannot tell whether another tenant holds the key). Never empty; "no key" is cached as
/// `None`.
#[derive(Debug, Clone)]
pub struct KeyMatches(pub Vec<Arc<KeyMatch>>);

impl KeyMatches {
    /// The key of this workspace, if it holds one.
    pub fn in_workspace(&self, workspace_id: &str) -> Option<Arc<KeyMatch>> {
        self.0
            .iter()
            .find(|m| m.key.workspace_id == workspace_id)
            .cloned()
    }

    /// The one key among those `wanted` accepts — or, when it accepts none, the one key there
    /// is. `None` when the choice is ambiguous: a legacy key held by several workspaces is
    /// refused rather than guessed, so one tenant's copy never answers for another's.
    pub fn only(&self, wanted: impl Fn(&KeyMatch) -> bool) -> Option<Arc<KeyMatch>> {
        let wanted: Vec<&Arc<KeyMatch>> = self.0.iter().filter(|m| wanted(m)).collect();
        match (wanted.as_slice(), self.0.as_slice()) {
            ([one], _) => Some(Arc::clone(one)),
            ([], [one]) => Some(Arc::clone(one)),
            _ => None,
        }
    }
}

impl Owned for KeyMatches {
    fn owner(&self) -> Option<String> {
        self.0.first().map(|m| m.key.id.clone())
    }

    fn owners(&self) -> Vec<String> {
        self.0.iter().map(|m| m.key.id.clone()).collect()
    }
}

impl Owned for Member {
    fn owner(&self) -> Option<String> {
        Some(self.id.clone())
    }
}

impl Owned for Workspace {
    fn owner(&self) -> Option<String> {
        Some(self.id.clone())
    }
}

impl Owned for Identity {
    fn owner(&self) -> Option<String> {
        Some(self.id.clone())
    }
}

impl Owned for Project {
    fn owner(&self) -> Option<String> {
        Some(self.id.clone())
    }
}

/// Whether a workspace has legacy keys, cached per workspace.
pub struct LegacyKeys {
    pub workspace_id: String,
    pub present: bool,
}

impl Owned for LegacyKeys {
    fn owner(&self) -> Option<String> {
        Some(self.workspace_id.clone())
    }
}
