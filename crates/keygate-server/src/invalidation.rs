//! Telling every node at once that something cached changed.
//!
//! Each node caches keys, members and workspaces (`cache.rs`). A change made through one node
//! invalidates that node's cache before the change is acknowledged; with Redis configured it
//! is also published on a channel every node subscribes to, so a revocation made on node A is
//! seen by node B within the time it takes Redis to deliver one message. Without Redis (one
//! node, or several nodes on PostgreSQL only) another node's cache is bounded by the cache
//! TTL instead (`ServerSettings::key_cache_ttl`, 30 s by default).
//!
//! A subscriber that loses its connection may have missed messages, so on every (re)connect
//! it clears its caches entirely.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use keygate_core::KeyHash;
use tokio::sync::OnceCell;

/// What a subscriber applies other nodes' changes to: this node's caches. The state
/// implements it (`state.rs`), so this module needs nothing above it.
pub trait Caches: Clone + Send + Sync + 'static {
    /// Drops what `change` makes stale.
    fn apply(&self, change: &Change) -> impl Future<Output = ()> + Send;
    /// Drops every cached entry (after missing other nodes' messages).
    fn clear(&self) -> impl Future<Output = ()> + Send;
}

/// What changed, as published on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Key(String),
    Member(String),
    Workspace(String),
    /// A workspace's "has legacy keys" flag.
    LegacyKeys(String),
    /// A cached "no such key" for this secret hash is wrong now (import).
    Hash(KeyHash),
    /// A routing rule, and with it the workspace's default rule, as the gateway caches them.
    RoutingRule {
        workspace_id: String,
        rule_id: String,
    },
}

impl Change {
    fn encode(&self) -> String {
        match self {
            Change::Key(id) => format!("key:{id}"),
            Change::Member(id) => format!("member:{id}"),
            Change::Workspace(id) => format!("workspace:{id}"),
            Change::LegacyKeys(id) => format!("legacy:{id}"),
            Change::Hash(hash) => format!("hash:{}", hash.to_hex()),
            Change::RoutingRule {
                workspace_id,
                rule_id,
            } => format!("rule:{workspace_id}/{rule_id}"),
        }
    }

    fn decode(text: &str) -> Option<Change> {
        let (kind, value) = text.split_once(':')?;
        let value = value.to_owned();
        Some(match kind {
            "key" => Change::Key(value),
            "member" => Change::Member(value),
            "workspace" => Change::Workspace(value),
            "legacy" => Change::LegacyKeys(value),
            "hash" => Change::Hash(KeyHash::from_slice(&hex::decode(value).ok()?)?),
            "rule" => {
                let (workspace_id, rule_id) = value.split_once('/')?;
                Change::RoutingRule {
                    workspace_id: workspace_id.to_owned(),
                    rule_id: rule_id.to_owned(),
                }
            }
            _ => return None,
        })
    }
}

/// Publishes changes to the other nodes (a no-op without Redis).
pub struct Broadcaster {
    redis: Option<RedisBus>,
}

struct RedisBus {
    client: redis::Client,
    channel: String,
    publisher: OnceCell<redis::aio::ConnectionManager>,
}

impl Broadcaster {
    /// Only this node: nothing to tell.
    pub fn local() -> Self {
        Self { redis: None }
    }

    pub fn redis(url: &str, namespace: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            redis: Some(RedisBus {
                client: redis::Client::open(url)?,
                channel: format!("kg:{namespace}:invalidate"),
                publisher: OnceCell::new(),
            }),
        })
    }

    /// Tells the other nodes. A failure is logged, not returned: the change is committed
    /// already, and the other nodes' cache TTL still bounds how long they can miss it.
    pub async fn publish(&self, change: &Change) {
        let Some(bus) = &self.redis else { return };
        let sent = async {
            let conn = bus
                .publisher
                .get_or_try_init(|| redis::aio::ConnectionManager::new(bus.client.clone()))
                .await?;
            let mut conn = conn.clone();
            redis::cmd("PUBLISH")
                .arg(&bus.channel)
                .arg(change.encode())
                .query_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(Duration::from_secs(1), sent).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not tell other nodes about a change"),
            Err(_) => tracing::warn!("timed out telling other nodes about a change"),
        }
    }

    /// Listens for other nodes' changes and applies them to this node's caches, reconnecting
    /// forever. `None` without Redis.
    pub fn spawn_subscriber(
        self: &Arc<Self>,
        caches: impl Caches,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let bus = self.redis.as_ref()?;
        let client = bus.client.clone();
        let channel = bus.channel.clone();
        Some(tokio::spawn(async move {
            loop {
                if let Err(e) = listen(&client, &channel, &caches).await {
                    tracing::warn!(error = %e, "lost the invalidation channel; reconnecting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }))
    }
}

async fn listen(
    client: &redis::Client,
    channel: &str,
    caches: &impl Caches,
) -> Result<(), redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    // Anything may have changed while we were not listening.
    caches.clear().await;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let Ok(payload) = message.get_payload::<String>() else {
            continue;
        };
        if let Some(change) = Change::decode(&payload) {
            caches.apply(&change).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip() {
        for change in [
            Change::Key("key_1".into()),
            Change::Member("mem_1".into()),
            Change::Workspace("ws_1".into()),
            Change::LegacyKeys("ws_1".into()),
            Change::Hash(KeyHash([7; 32])),
            Change::RoutingRule {
                workspace_id: "ws_1".into(),
                rule_id: "rr_1".into(),
            },
        ] {
            assert_eq!(Change::decode(&change.encode()), Some(change));
        }
        assert_eq!(Change::decode("nonsense"), None);
    }
}
