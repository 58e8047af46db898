//! Telling every node that something cached changed, with a bound on how long any node can
//! serve the old state: none after the change is acknowledged, while Redis is up.
//!
//! Each node caches keys, members and workspaces (`cache.rs`). A change made through one node
//! invalidates that node's cache before the change is acknowledged. With Redis configured (a
//! cluster), the guarantee for the other nodes is built from three parts:
//!
//! 1. **Leases.** A node serves cache hits only while it holds a lease ([`Lease`]). Every
//!    [`BEAT`] it publishes a heartbeat stamped with its own clock on the shared channel; when
//!    it reads its *own* heartbeat back, it has read every message Redis delivered before it,
//!    and renews the lease to the heartbeat's stamp plus [`LEASE`]. A node that stops reading
//!    the channel (disconnected, stalled, partitioned) loses its lease within [`LEASE`] of its
//!    last heartbeat's sending, by its own clock, and reads through to the store from then on.
//!    On every (re)subscription it also drops everything cached, since messages may have been
//!    missed.
//! 2. **Acknowledgements.** Every node applies each change to its caches and then publishes an
//!    acknowledgement. The node that made the change waits, before answering its client, for
//!    the acknowledgement of every node it has seen heartbeats from within the lease window.
//! 3. **The bound.** It waits at most [`LEASE`] plus a margin after its publish returned. A node
//!    that has not acknowledged by then has not read the change, so it has not read any
//!    heartbeat of its own sent after the change either: its lease, renewed at best by a
//!    heartbeat sent before the change reached Redis, has ended.
//!
//! So once a change is acknowledged, every node either has dropped the old state or holds no
//! lease (and reads the store). The assumptions: node clocks run at the same rate (not the
//! same time), and the changing node reaches Redis. If it cannot publish (Redis down for that
//! node alone), the change is committed and acknowledged anyway, logged and counted
//! (`keygate_invalidation_publish_failures_total`), and other nodes drop the old state within
//! the cache TTL (`ServerSettings::key_cache_ttl`, 30 s by default). A cluster without Redis
//! has only that TTL. A node that has just (re)subscribed does not yet know which nodes are
//! alive, so its changes wait the whole bound.

mod wire;

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{watch, OnceCell};

use crate::cache::Lease;
use crate::metrics::Histogram;
pub use wire::Change;
use wire::Message;

/// How often a node publishes its heartbeat.
pub const BEAT: Duration = Duration::from_millis(50);
/// How long one heartbeat read back keeps the lease, from its sending: several beats, so a
/// busy moment does not drop the caches.
pub const LEASE: Duration = Duration::from_millis(250);
/// Added to [`LEASE`] when a change waits for acknowledgements: for the heartbeat's own trip.
const MARGIN: Duration = Duration::from_millis(25);

/// What a subscriber applies other nodes' changes to: this node's caches. The state
/// implements it (`state.rs`), so this module needs nothing above it.
pub trait Caches: Clone + Send + Sync + 'static {
    /// Drops what `change` makes stale.
    fn apply(&self, change: &Change) -> impl Future<Output = ()> + Send;
    /// Drops every cached entry (after missing other nodes' messages).
    fn clear(&self) -> impl Future<Output = ()> + Send;
}

/// Publishes changes to the other nodes, waits for them, and keeps this node's lease.
pub struct Broadcaster {
    lease: Arc<Lease>,
    redis: Option<RedisBus>,
}

struct RedisBus {
    client: redis::Client,
    channel: String,
    /// This node's id on the channel, random per process.
    node: String,
    publisher: OnceCell<redis::aio::ConnectionManager>,
    seq: AtomicU64,
    /// Changes of this node waiting for acknowledgements: seq → the nodes that acknowledged.
    pending: Mutex<HashMap<u64, watch::Sender<HashSet<String>>>>,
    /// Node → when its last heartbeat was read here.
    seen: Mutex<HashMap<String, Instant>>,
    /// When the current subscription started; `None` while not subscribed.
    subscribed_since: Mutex<Option<Instant>>,
    /// Publish → every live node acknowledged (or the bound).
    lag: Histogram,
    /// Changes that waited the whole bound (a node did not acknowledge in time).
    unconfirmed: AtomicU64,
    publish_failures: AtomicU64,
    subscribed: AtomicBool,
}

impl Broadcaster {
    /// Only this node: nothing to tell, and its cache is always coherent.
    pub fn local() -> Self {
        Self {
            lease: Lease::forever(),
            redis: None,
        }
    }

    /// A node of a cluster sharing `namespace` on this Redis (for a Redis Cluster, the one
    /// seed every node picks: `RedisTarget::pubsub_client`). It holds no lease (serves no
    /// cache hit) until its subscription is up.
    pub fn redis(url: &str, namespace: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            lease: Lease::ended(),
            redis: Some(RedisBus {
                client: keygate_limits::redis::RedisTarget::parse(url)?.pubsub_client()?,
                channel: format!("kg:{namespace}:invalidate"),
                node: format!("{:016x}", rand::random::<u64>()),
                publisher: OnceCell::new(),
                seq: AtomicU64::new(0),
                pending: Mutex::new(HashMap::new()),
                seen: Mutex::new(HashMap::new()),
                subscribed_since: Mutex::new(None),
                lag: Histogram::default(),
                unconfirmed: AtomicU64::new(0),
                publish_failures: AtomicU64::new(0),
                subscribed: AtomicBool::new(false),
            }),
        })
    }

    /// The lease every cache of this node checks.
    pub fn lease(&self) -> Arc<Lease> {
        self.lease.clone()
    }

    /// Tells the other nodes and waits until each has dropped the old state or lost its lease
    /// (see the module doc). A failure to publish is logged and counted, not returned: the
    /// change is committed already.
    pub async fn publish(&self, change: &Change) {
        let Some(bus) = &self.redis else { return };
        let started = Instant::now();
        let seq = bus.seq.fetch_add(1, Ordering::Relaxed);
        let (acked, mut watch) = watch::channel(HashSet::new());
        lock(&bus.pending).insert(seq, acked);
        let message = Message::Change {
            node: bus.node.clone(),
            seq,
            change: change.clone(),
        };
        match tokio::time::timeout(Duration::from_secs(1), bus.send(&message)).await {
            Ok(Ok(())) => {
                let deadline = tokio::time::Instant::now() + LEASE + MARGIN;
                if bus.await_acks(&mut watch, deadline).await {
                    bus.lag.observe(started.elapsed());
                } else {
                    bus.unconfirmed.fetch_add(1, Ordering::Relaxed);
                    bus.lag.observe(started.elapsed());
                }
            }
            Ok(Err(e)) => {
                bus.publish_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "could not tell other nodes about a change; they drop it within the cache TTL");
            }
            Err(_) => {
                bus.publish_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("timed out telling other nodes about a change; they drop it within the cache TTL");
            }
        }
        lock(&bus.pending).remove(&seq);
    }

    /// Listens for other nodes' changes and applies them to this node's caches, publishes
    /// heartbeats, and keeps the lease; reconnects forever. `None` without Redis.
    pub fn spawn_subscriber(
        self: &Arc<Self>,
        caches: impl Caches,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.redis.as_ref()?;
        let this = Arc::clone(self);
        Some(tokio::spawn(async move {
            let Some(bus) = &this.redis else { return };
            loop {
                if let Err(e) = bus.listen(&this.lease, &caches).await {
                    tracing::warn!(error = %e, "lost the invalidation channel; reconnecting");
                }
                this.lease.end();
                bus.subscribed.store(false, Ordering::Relaxed);
                *lock(&bus.subscribed_since) = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }

    /// For `/healthz`: `local`, or the subscription's state.
    pub fn health(&self) -> serde_json::Value {
        match &self.redis {
            None => serde_json::json!({"mode": "local"}),
            Some(bus) => serde_json::json!({
                "mode": "redis",
                "subscribed": bus.subscribed.load(Ordering::Relaxed),
                "lease": self.lease.is_held(),
                "nodes": bus.live_nodes().len(),
            }),
        }
    }

    /// Appends the invalidation series to a Prometheus exposition (nothing without Redis).
    pub fn render_metrics(&self, out: &mut String) {
        let Some(bus) = &self.redis else { return };
        bus.lag.render(
            out,
            "keygate_invalidation_lag_seconds",
            "From publishing a change to every live node having applied it (or the lease bound).",
        );
        let gauges = [
            (
                "keygate_invalidation_subscribed",
                "Whether this node is subscribed to the invalidation channel.",
                u64::from(bus.subscribed.load(Ordering::Relaxed)),
            ),
            (
                "keygate_invalidation_lease_held",
                "Whether this node may serve cached entries (its heartbeat came back in time).",
                u64::from(self.lease.is_held()),
            ),
            (
                "keygate_invalidation_nodes",
                "Nodes whose heartbeat this node read within the lease window.",
                bus.live_nodes().len() as u64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let counters = [
            (
                "keygate_invalidation_unconfirmed_total",
                "Changes that waited the whole lease bound for a node's acknowledgement.",
                &bus.unconfirmed,
            ),
            (
                "keygate_invalidation_publish_failures_total",
                "Changes this node could not publish (other nodes drop them within the cache TTL).",
                &bus.publish_failures,
            ),
        ];
        for (name, help, counter) in counters {
            let value = counter.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
    }
}

impl RedisBus {
    async fn send(&self, message: &Message) -> Result<(), redis::RedisError> {
        let conn = self
            .publisher
            .get_or_try_init(|| redis::aio::ConnectionManager::new(self.client.clone()))
            .await?;
        let mut conn = conn.clone();
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(message.encode())
            .query_async::<i64>(&mut conn)
            .await
            .map(drop)
    }

    /// Nodes whose heartbeat was read within the lease window (and the margin).
    fn live_nodes(&self) -> Vec<String> {
        let window = LEASE + MARGIN;
        let mut seen = lock(&self.seen);
        // Nodes that stopped long ago are forgotten.
        seen.retain(|_, at| at.elapsed() < Duration::from_secs(60));
        seen.iter()
            .filter(|(_, at)| at.elapsed() <= window)
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// Waits for this node's own acknowledgement (by then its subscriber has read every
    /// heartbeat Redis delivered before the change), then for every node seen alive. `false`
    /// when `deadline` came first. A subscription younger than the window cannot know every
    /// node alive, so then only the deadline ends the wait.
    async fn await_acks(
        &self,
        watch: &mut watch::Receiver<HashSet<String>>,
        deadline: tokio::time::Instant,
    ) -> bool {
        let own = self.node.clone();
        let seen_own =
            tokio::time::timeout_at(deadline, watch.wait_for(|acked| acked.contains(&own)));
        if !matches!(seen_own.await, Ok(Ok(_))) {
            return false;
        }
        let settled =
            lock(&self.subscribed_since).is_some_and(|since| since.elapsed() > LEASE + MARGIN);
        if !settled {
            tokio::time::sleep_until(deadline).await;
            return false;
        }
        let live = self.live_nodes();
        let all = watch.wait_for(|acked| live.iter().all(|node| acked.contains(node)));
        matches!(tokio::time::timeout_at(deadline, all).await, Ok(Ok(_)))
    }

    async fn listen(&self, lease: &Lease, caches: &impl Caches) -> Result<(), redis::RedisError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        // Anything may have changed while we were not listening.
        caches.clear().await;
        self.subscribed.store(true, Ordering::Relaxed);
        *lock(&self.subscribed_since) = Some(Instant::now());
        let mut messages = pubsub.on_message();
        let mut beat = tokio::time::interval(BEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { return Ok(()) };
                    let Ok(payload) = message.get_payload::<String>() else { continue };
                    if let Some(message) = Message::decode(&payload) {
                        self.receive(message, lease, caches).await;
                    }
                }
                _ = beat.tick() => {
                    let message = Message::Beat { node: self.node.clone(), at_ms: lease.now_ms() };
                    if let Err(e) = self.send(&message).await {
                        tracing::debug!(error = %e, "could not publish a heartbeat");
                    }
                }
            }
        }
    }

    async fn receive(&self, message: Message, lease: &Lease, caches: &impl Caches) {
        match message {
            Message::Beat { node, at_ms } => {
                if node == self.node {
                    let lease_ms = u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX);
                    lease.renew_until(at_ms.saturating_add(lease_ms));
                }
                lock(&self.seen).insert(node, Instant::now());
            }
            Message::Change { node, seq, change } => {
                caches.apply(&change).await;
                let ack = Message::Ack {
                    node,
                    seq,
                    by: self.node.clone(),
                };
                if let Err(e) = self.send(&ack).await {
                    tracing::debug!(error = %e, "could not acknowledge a change");
                }
            }
            Message::Ack { node, seq, by } => {
                if node == self.node {
                    if let Some(acked) = lock(&self.pending).get(&seq) {
                        acked.send_modify(|acked| {
                            acked.insert(by);
                        });
                    }
                }
            }
        }
    }
}

/// A poisoned lock still holds consistent data here (plain maps); keep going.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
