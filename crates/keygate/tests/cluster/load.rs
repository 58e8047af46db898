//! Many logical requests at once with a bounded number in flight: every request is started
//! together and waits its turn at a semaphore, so the servers see a steady crowd of
//! concurrent callers without the client side of a small machine drowning them.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Requests in flight at once in these tests: enough for every node to interleave many
/// decisions, few enough for a 2-core machine shared with three servers.
pub const IN_FLIGHT: usize = 50;

/// Runs `task(0)`, …, `task(count - 1)` concurrently, at most `in_flight` at a time, and
/// returns their results in order. A task that panics fails the caller.
pub async fn concurrently<T, F, Fut>(count: usize, in_flight: usize, task: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let gate = Arc::new(Semaphore::new(in_flight));
    let running: Vec<_> = (0..count)
        .map(|i| {
            let request = task(i);
            let gate = gate.clone();
            tokio::spawn(async move {
                let _turn = gate.acquire_owned().await.expect("the gate stays open");
                request.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(count);
    for request in running {
        results.push(request.await.expect("a request task panicked"));
    }
    results
}
