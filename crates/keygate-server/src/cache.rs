//! In-memory caches in front of the store that never serve a change's old state after the
//! change was acknowledged.
//!
//! Verification must not touch the database on a hot key, yet a revocation must take effect on
//! the very next request. Entries are indexed by their owner (a key id, member id or workspace
//! id) so a change invalidates them. The subtle case is a miss being filled with data read
//! just before a change committed: fills hold a shared lock across "read the store, insert",
//! and invalidation takes the exclusive lock, so a fill either finishes before the
//! invalidation (and is removed by it) or starts after the commit (and reads the new state).
//! Hits take no lock.
//!
//! Across nodes, every cache serves hits only while its node holds a [`Lease`]: proof, renewed
//! by the invalidation channel, that the node has seen every change published up to a recent
//! moment (`invalidation/mod.rs` says how that bounds revocation lag). Without the lease a
//! cache reads through to the store and keeps nothing.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

/// Values that belong to an owner whose change must invalidate them.
pub trait Owned {
    /// The id whose change invalidates this value; `None` for a cached "not found".
    fn owner(&self) -> Option<String>;

    /// Every id whose change invalidates this value, for values that gather several owners
    /// (a legacy key imported by several workspaces).
    fn owners(&self) -> Vec<String> {
        self.owner().into_iter().collect()
    }
}

/// Until when this node may serve what it cached, on its own monotonic clock. A single node
/// (no Redis) holds a lease that never ends: every change goes through it. A node of a
/// cluster holds one only while its invalidation channel keeps renewing it.
#[derive(Debug)]
pub struct Lease {
    origin: Instant,
    /// Milliseconds since `origin`; `u64::MAX` for a lease that never ends.
    until_ms: AtomicU64,
}

impl Lease {
    /// A lease that never ends (one node: nothing can change behind its back).
    pub fn forever() -> Arc<Lease> {
        Arc::new(Lease {
            origin: Instant::now(),
            until_ms: AtomicU64::new(u64::MAX),
        })
    }

    /// A lease that has ended until it is renewed.
    pub fn ended() -> Arc<Lease> {
        Arc::new(Lease {
            origin: Instant::now(),
            until_ms: AtomicU64::new(0),
        })
    }

    /// Now, in this lease's milliseconds.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    pub fn is_held(&self) -> bool {
        self.now_ms() < self.until_ms.load(Ordering::Acquire)
    }

    /// Extends the lease to `until_ms` (never shortens it).
    pub fn renew_until(&self, until_ms: u64) {
        self.until_ms.fetch_max(until_ms, Ordering::AcqRel);
    }

    /// Ends the lease now (the channel was lost).
    pub fn end(&self) {
        self.until_ms.store(0, Ordering::Release);
    }
}

/// A cache of `K → Option<V>` (absent values are cached too) that stays coherent with
/// changes made through this process.
pub struct CoherentCache<K, V> {
    entries: moka::sync::Cache<K, Option<Arc<V>>>,
    by_owner: Mutex<HashMap<String, Vec<K>>>,
    fill: RwLock<()>,
    lease: Arc<Lease>,
}

impl<K, V> CoherentCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Owned + Send + Sync + 'static,
{
    pub fn new(capacity: u64, ttl: Duration, lease: Arc<Lease>) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            by_owner: Mutex::new(HashMap::new()),
            fill: RwLock::new(()),
            lease,
        }
    }

    /// The cached value, or the one `load` reads (then cached). `Ok(None)` is "does not exist".
    /// Without the lease, always `load`, and nothing is kept.
    pub async fn get_or_load<E, F, Fut>(&self, key: &K, load: F) -> Result<Option<Arc<V>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if !self.lease.is_held() {
            return Ok(load().await?.map(Arc::new));
        }
        if let Some(hit) = self.entries.get(key) {
            return Ok(hit);
        }
        let _fill = self.fill.read().await;
        let loaded = load().await?.map(Arc::new);
        let owners = loaded.as_ref().map(|v| v.owners()).unwrap_or_default();
        if !owners.is_empty() {
            let mut index = self.by_owner.lock().unwrap_or_else(|p| p.into_inner());
            for owner in owners {
                let keys = index.entry(owner).or_default();
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
        self.entries.insert(key.clone(), loaded.clone());
        Ok(loaded)
    }

    /// Drops everything cached for an owner; call after its change committed.
    pub async fn invalidate_owner(&self, owner: &str) {
        let _exclusive = self.fill.write().await;
        let keys = self
            .by_owner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(owner)
            .unwrap_or_default();
        for key in keys {
            self.entries.invalidate(&key);
        }
    }

    /// Drops one entry (e.g. a cached "not found" for a hash that now exists).
    pub async fn invalidate(&self, key: &K) {
        let _exclusive = self.fill.write().await;
        self.entries.invalidate(key);
    }

    /// Drops everything (used when another node reports a change we cannot pin down).
    pub async fn clear(&self) {
        let _exclusive = self.fill.write().await;
        self.by_owner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Val(&'static str, u32);
    impl Owned for Val {
        fn owner(&self) -> Option<String> {
            Some(self.0.to_string())
        }
    }

    #[tokio::test]
    async fn hits_avoid_the_loader_and_invalidation_forces_a_reload() {
        let cache: CoherentCache<u32, Val> =
            CoherentCache::new(100, Duration::from_secs(60), Lease::forever());
        let first = cache
            .get_or_load(&1, || async { Ok::<_, ()>(Some(Val("a", 1))) })
            .await
            .expect("load");
        assert_eq!(first.as_deref(), Some(&Val("a", 1)));
        let hit = cache
            .get_or_load(&1, || async { Ok::<_, ()>(Some(Val("a", 2))) })
            .await
            .expect("hit");
        assert_eq!(hit.as_deref(), Some(&Val("a", 1)));
        cache.invalidate_owner("a").await;
        let reloaded = cache
            .get_or_load(&1, || async { Ok::<_, ()>(Some(Val("a", 2))) })
            .await
            .expect("reload");
        assert_eq!(reloaded.as_deref(), Some(&Val("a", 2)));
    }

    #[tokio::test]
    async fn without_the_lease_every_read_goes_to_the_store() {
        let lease = Lease::ended();
        let cache: CoherentCache<u32, Val> =
            CoherentCache::new(100, Duration::from_secs(60), lease.clone());
        for n in 1..=2 {
            let read = cache
                .get_or_load(&1, || async move { Ok::<_, ()>(Some(Val("a", n))) })
                .await
                .expect("load");
            assert_eq!(
                read.as_deref(),
                Some(&Val("a", n)),
                "read {n} was not cached"
            );
        }
        lease.renew_until(lease.now_ms() + 60_000);
        assert!(lease.is_held());
        let first = cache
            .get_or_load(&1, || async { Ok::<_, ()>(Some(Val("a", 3))) })
            .await
            .expect("load");
        let hit = cache
            .get_or_load(&1, || async { Ok::<_, ()>(Some(Val("a", 4))) })
            .await
            .expect("hit");
        assert_eq!(
            (first.as_deref(), hit.as_deref()),
            (Some(&Val("a", 3)), Some(&Val("a", 3)))
        );
        lease.end();
        let after = cache
            .get_or_load(&1, || async { Ok::<_, ()>(Some(Val("a", 5))) })
            .await
            .expect("load");
        assert_eq!(
            after.as_deref(),
            Some(&Val("a", 5)),
            "an ended lease serves no hit"
        );
    }

    #[tokio::test]
    async fn absent_values_are_cached_until_invalidated() {
        let cache: CoherentCache<u32, Val> =
            CoherentCache::new(100, Duration::from_secs(60), Lease::forever());
        let none = cache
            .get_or_load(&7, || async { Ok::<_, ()>(None) })
            .await
            .expect("load");
        assert!(none.is_none());
        let still = cache
            .get_or_load(&7, || async { Ok::<_, ()>(Some(Val("b", 1))) })
            .await
            .expect("hit");
        assert!(still.is_none());
        cache.invalidate(&7).await;
        let now = cache
            .get_or_load(&7, || async { Ok::<_, ()>(Some(Val("b", 1))) })
            .await
            .expect("reload");
        assert!(now.is_some());
    }
}
