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

pub fn redis_url() -> Option<String> {
    let url = std::env::var("KEYGATE_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        println!("skipping Redis limiter tests: KEYGATE_TEST_REDIS_URL is unset");
    }
    url
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

pub async fn redis(clock: &FixedClock, test: &str) -> Option<Shared> {
    let url = redis_url()?;
    Some(Arc::new(
        redis_in(&url, &fresh_namespace(test), clock).await,
    ))
}

/// `backend_tests!(module::case, ...)` makes `memory::case` and `redis::case` tests.
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
                async fn $case() {
                    let clock = crate::noon();
                    let Some(limiter) = crate::backends::redis(&clock, stringify!($case)).await
                    else {
                        return;
                    };
                    crate::$module::$case(limiter, &clock).await;
                }
            )*
        }
    };
}
pub(crate) use backend_tests;
