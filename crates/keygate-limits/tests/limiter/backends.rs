//! Runs each conformance case on every backend.

use std::sync::Arc;

use keygate_core::FixedClock;
use keygate_limits::{MemoryLimiter, RedisLimiter};

use crate::Shared;

pub fn memory(clock: &FixedClock) -> Shared {
    Arc::new(MemoryLimiter::new(Arc::new(clock.clone())))
}

/// A runtime for one property case: proptest runs its cases synchronously.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The Redis server tests use: `KEYGATE_TEST_REDIS_URL`, or a panic saying how to set it.
/// Tests needing it are `#[ignore]`d with `redis` in their path; `scripts/test` runs them when
/// Redis answers.
pub fn redis_url() -> String {
    match std::env::var("KEYGATE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "this test needs Redis: set KEYGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379), \
             or run scripts/test, which sets it when Redis answers there"
        ),
    }
}

/// The Redis Cluster tests use: `KEYGATE_TEST_REDIS_CLUSTER_URL` (`redis+cluster://…`, which
/// `scripts/redis-cluster up` prints), or a panic saying how to set it. Tests needing it have
/// `redis_cluster` in their path.
pub fn redis_cluster_url() -> String {
    match std::env::var("KEYGATE_TEST_REDIS_CLUSTER_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "this test needs a Redis Cluster: run scripts/redis-cluster up and set \
             KEYGATE_TEST_REDIS_CLUSTER_URL to the URL it prints, or run scripts/test, which \
             sets it when the local cluster answers"
        ),
    }
}

/// A namespace no other test (or earlier run) uses.
pub fn fresh_namespace(test: &str) -> String {
    format!("test:{test}:{:016x}", rand::random::<u64>())
}

pub async fn redis_in(url: &str, namespace: &str, clock: &FixedClock) -> RedisLimiter {
    RedisLimiter::connect(url, namespace, Arc::new(clock.clone()))
        .await
        .expect("Redis at KEYGATE_TEST_REDIS_URL")
}

pub async fn redis(clock: &FixedClock, test: &str) -> Shared {
    Arc::new(redis_in(&redis_url(), &fresh_namespace(test), clock).await)
}

pub async fn redis_cluster(clock: &FixedClock, test: &str) -> Shared {
    Arc::new(redis_in(&redis_cluster_url(), &fresh_namespace(test), clock).await)
}

/// `backend_tests!(module::case, ...)` makes `memory::case`, `redis::case` and
/// `redis_cluster::case` tests: every case on the in-process limiter, one Redis server and a
/// 3-master Redis Cluster.
macro_rules! backend_tests {
    ($module:ident: $($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let clock = crate::noon();
                    let limiter = crate::backends::memory(&clock);
                    crate::$module::$case(limiter, &clock).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs Redis: KEYGATE_TEST_REDIS_URL (scripts/test sets it when Redis answers)"]
                async fn $case() {
                    let clock = crate::noon();
                    let limiter = crate::backends::redis(&clock, stringify!($case)).await;
                    crate::$module::$case(limiter, &clock).await;
                }
            )*
        }
        mod redis_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs a Redis Cluster: KEYGATE_TEST_REDIS_CLUSTER_URL (scripts/test sets it when the cluster of scripts/redis-cluster answers)"]
                async fn $case() {
                    let clock = crate::noon();
                    let limiter =
                        crate::backends::redis_cluster(&clock, stringify!($case)).await;
                    crate::$module::$case(limiter, &clock).await;
                }
            )*
        }
    };
}
pub(crate) use backend_tests;
