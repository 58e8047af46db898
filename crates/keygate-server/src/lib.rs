//! Keygate's HTTP server: the management API under `/v1`, verify mode and gateway mode (a
//! reverse proxy and an OpenAI-compatible AI gateway), over the store and limiter crates.
//!
//! A request enters through `routes::router` (request id → panic guard → body limit →
//! authenticate and authorize → idempotency → handler; gateway routes skip the management
//! layers). Whether a key may make a request is decided in one place, [`pipeline::check`],
//! which verify mode, reservations and both gateways call; management handlers live in
//! `routes/`, one file per resource, and the gateway in `gateway/`. The binary builds
//! [`ServerSettings`], calls [`prepare`] and then [`serve_with`], adding the web dashboard's
//! routes (the `keygate-dashboard` crate, above this one, calling the same key functions).
//!
//! The decisions a reader must know (each explained in `docs/design.md`):
//!
//! * **Authenticate before any work** (§4): the caller's token and role are checked before a
//!   body is read, an idempotent answer replayed or a row written.
//! * **Caches never serve a change's old state** (§8): keys, members and workspaces are cached
//!   per node and invalidated before a change is acknowledged; across nodes, a node serves
//!   its cache only while it holds a lease renewed through Redis, and a change is
//!   acknowledged once every live node has dropped it or lost its lease (`invalidation`).
//! * **Usage is recorded off the request path** (§9): a full buffer drops and counts events
//!   rather than slow a request; a crash loses at most one flush interval of usage, never an
//!   audit row.
//! * **Limits fail closed** (§6): when the limiter cannot be reached, the answer is 503.
//! * **One error type answers every failure** ([`error::ApiError`]): a stable `code`, a status
//!   and a message a person can act on; a 5xx body says nothing internal, the cause is logged.
//!
//! **Layers**, bottom to top; a module imports only from its own layer or below, and the
//! modules form no cycle (the `layering` test reads the source and checks both):
//!
//! 1. Leaves: `error`, `secret`, `cache`, `metrics`, `last_used`, `extract`, `request_id`,
//!    `invalidation` (the state applies changes through its `Caches` trait), `usage` (events,
//!    validators, recorder, aggregation, purger, its Prometheus text) and `gateway::config`
//!    (the parsed config, with the `Workspaces` a route serves).
//! 2. What the state is built from: `settings` and `gateway::runtime` (the gateway's client
//!    and routing-rule cache, which takes the store, not the state).
//! 3. `state`.
//! 4. What handlers share: `auth`, `audit`, `idempotency`, `bootstrap` and `pipeline`.
//! 5. The gateway's handlers (`gateway::*`); they never import `routes`.
//! 6. The management API (`routes::*`): the resource modules never import one another; what
//!    two of them share is below them in `routes::common`, `routes::check` and
//!    `routes::table`.
//! 7. This root: `prepare` and `serve`.

pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod cache;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod idempotency;
pub mod invalidation;
pub mod last_used;
#[cfg(test)]
mod layering;
pub mod metrics;
pub mod pipeline;
pub mod request_id;
pub mod routes;
pub mod secret;
pub mod settings;
pub mod state;
pub mod usage;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keygate_core::{Clock, KeyPrefix, SystemClock};
use keygate_limits::{Limiter, MemoryLimiter, RedisLimiter};
use tokio::net::TcpListener;

pub use bootstrap::Bootstrapped;
pub use routes::{router, router_with};
pub use settings::ServerSettings;
pub use state::{AppState, StateParts};

/// Connects the store and limiter, loads the secret, and bootstraps a first workspace when the
/// store is empty (the owner's token is in the returned [`Bootstrapped`], to be shown once).
pub async fn prepare(
    settings: &ServerSettings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(AppState, Option<Bootstrapped>)> {
    let store = keygate_store::connect(&settings.database_url)
        .await
        .context("opening the database")?;
    let secret = secret::load_or_create(settings.secret_hex.as_deref(), &settings.secret_file)?;
    let broadcaster = match &settings.redis_url {
        Some(url) => invalidation::Broadcaster::redis(url, &settings.redis_namespace)
            .context("the Redis URL is not valid")?,
        None => invalidation::Broadcaster::local(),
    };
    let limiter: Arc<dyn Limiter> = match &settings.redis_url {
        Some(url) => {
            // Lazy: a node may start while Redis is down; until Redis answers, requests that
            // need a limit decision get 503 limiter_unavailable (fail closed).
            let limiter = RedisLimiter::lazy(url, &settings.redis_namespace, clock.clone())
                .context("the Redis URL is not valid")?;
            if let Err(e) = limiter
                .status(&keygate_limits::Admission::new(
                    keygate_limits::Subject::new("-", "-"),
                ))
                .await
            {
                tracing::warn!(error = %e, "Redis is not reachable yet; limited requests will be refused until it is");
            }
            Arc::new(limiter)
        }
        None => Arc::new(MemoryLimiter::new(clock.clone())),
    };
    let bootstrapped = if store.workspace_count().await? == 0 {
        Some(
            bootstrap::create_workspace(
                store.as_ref(),
                &secret,
                clock.as_ref(),
                "default",
                default_prefix(),
            )
            .await?,
        )
    } else {
        None
    };
    let lease = broadcaster.lease();
    let state = AppState::new(StateParts {
        store,
        limiter,
        secret,
        clock,
        key_cache_ttl: settings.key_cache_ttl,
        max_body_bytes: settings.max_body_bytes,
        broadcaster,
        usage: settings.usage.clone(),
        gateway: settings
            .gateway
            .clone()
            .map(|config| {
                config.check_reserved(&routes::reserved_paths())?;
                gateway::Gateway::new(config, settings.key_cache_ttl, lease.clone())
            })
            .transpose()?,
        webhook_targets: webhooks::TargetPolicy {
            allow_loopback: settings.webhooks_allow_loopback,
        },
        webhook_timing: webhooks::WebhookTiming {
            expiry_scan_every: settings.webhooks_expiry_scan_every,
            disable_after: settings.webhooks_disable_after,
        },
    });
    Ok((state, bootstrapped))
}

/// `kg`, the prefix of the first workspace's keys.
pub fn default_prefix() -> KeyPrefix {
    KeyPrefix::parse("kg").unwrap_or_else(|_| unreachable!())
}

/// A clock for production.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Serves until `shutdown` completes, then finishes in-flight requests and flushes what is
/// buffered (last-used times, usage events) before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(listener, state, axum::Router::new(), shutdown).await
}

/// [`serve`], with `extra` routes beside the API (see [`routes::router_with`]): how the
/// binary adds the dashboard.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    extra: axum::Router<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let flusher = state.last_used.spawn_flusher(Duration::from_secs(1));
    let purger = spawn_idempotency_purger(state.clone());
    let usage_flusher = state.usage.spawn_flusher();
    let usage_purger = state
        .usage
        .spawn_purger(state.clock.clone(), Duration::from_secs(600));
    let subscriber = state.broadcaster.spawn_subscriber(state.clone());
    let deliveries = webhooks::Dispatcher {
        store: state.store.clone(),
        secret: state.secret.clone(),
        clock: state.clock.clone(),
        policy: state.webhook_targets,
        counts: state.webhook_counts.clone(),
        disable_after: state.webhook_timing.disable_after,
    }
    .spawn(Duration::from_millis(500));
    let expiry_notices = webhooks::ExpiryScanner {
        store: state.store.clone(),
        clock: state.clock.clone(),
    }
    .spawn(state.webhook_timing.expiry_scan_every);
    let app = routes::router_with(state.clone(), extra);
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    flusher.abort();
    purger.abort();
    deliveries.abort();
    expiry_notices.abort();
    if let Some(subscriber) = subscriber {
        subscriber.abort();
    }
    usage_purger.abort();
    state.last_used.flush().await;
    // Stopped between two flushes, then flushed once more: the events of requests that
    // finished during the graceful shutdown are written too.
    usage_flusher.stop().await;
    state.usage.flush().await;
    result.context("serving HTTP")
}

fn spawn_idempotency_purger(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let before = state.clock.now() - chrono::Duration::hours(idempotency::RETENTION_HOURS);
            if let Err(e) = state.store.purge_idempotency(before).await {
                tracing::warn!(error = %e, "could not purge old idempotency records");
            }
        }
    })
}
