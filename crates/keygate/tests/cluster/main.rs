//! Keygate as a deployment of several nodes: real `keygate serve` processes of the built
//! binary on one PostgreSQL database and one Redis, driven over HTTP as clients drive them,
//! each request to the next node in turn.
//!
//! [`cluster::Cluster`] starts the nodes (a fresh database and Redis namespace per cluster),
//! can SIGKILL and restart any of them, and kills every process it started when it is dropped,
//! also when a test panics. [`load::concurrently`] runs many logical requests with a bounded
//! number in flight, so a 2-core machine measures the servers rather than its own queue.
//!
//! Every test here needs both services, so each carries `postgres_redis` in its path and is
//! `#[ignore]`d with how to enable it; run without the services' variables, it panics with that
//! message rather than passing:
//!
//! ```text
//! KEYGATE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//! KEYGATE_TEST_REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo test -p keygate --test cluster -- --include-ignored
//! ```

mod cluster;
mod load;
mod postgres_redis;
