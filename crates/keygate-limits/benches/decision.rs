//! Decision cost: what one `admit` costs in process and on Redis.
//!
//! The clock advances one second per decision, so a 60/min window keeps a full log of 60
//! requests and every decision is admitted: the steady state of a hot key.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use keygate_core::limits::{CostLimit, RateWindow, ResetPeriod, TokenLimit, WindowLength};
use keygate_core::{FixedClock, Micros};
use keygate_limits::{Admission, IdentityLimits, Limiter, MemoryLimiter, RedisLimiter, Subject};

fn one_window() -> Admission {
    Admission {
        rate_limits: vec![RateWindow {
            limit: 60,
            window: WindowLength(60),
        }],
        ..Admission::new(Subject::new("ws_bench", "key_hot"))
    }
}

fn all_budgets() -> Admission {
    Admission {
        rate_limits: vec![
            RateWindow {
                limit: 60,
                window: WindowLength(60),
            },
            RateWindow {
                limit: 10_000,
                window: WindowLength(3600),
            },
        ],
        token_limit: Some(TokenLimit {
            limit: u64::MAX / 2,
            reset: ResetPeriod::Monthly,
        }),
        cost_limit: Some(CostLimit {
            limit: Micros(i64::MAX / 2),
            reset: ResetPeriod::Daily,
        }),
        daily_spend_cap: Some(Micros(i64::MAX / 2)),
        credit_balance: Some(Micros(i64::MAX / 2)),
        tokens: 120,
        cost: Micros(3_000),
        ..one_window()
    }
}

/// Every budget, on the key and on its identity alike: the cost of a third scope.
fn with_identity() -> Admission {
    let key = all_budgets();
    Admission {
        subject: key.subject.clone().with_identity(Some("idn_hot")),
        identity: Some(IdentityLimits {
            identity_id: "idn_hot".into(),
            rate_limits: key.rate_limits.clone(),
            token_limit: key.token_limit,
            cost_limit: key.cost_limit,
            daily_spend_cap: key.daily_spend_cap,
        }),
        ..key
    }
}

/// The Redis connection's driver task lives on the runtime it was made on, so the limiter
/// and the benchmark must share one.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

fn bench_limiter(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    limiter: Arc<dyn Limiter>,
    clock: &FixedClock,
) {
    for (case, req) in [
        ("one_window", one_window()),
        ("all_budgets", all_budgets()),
        ("with_identity", with_identity()),
    ] {
        c.bench_function(&format!("{name}/admit/{case}"), |b| {
            b.to_async(runtime).iter(|| {
                clock.advance_millis(1000);
                let limiter = Arc::clone(&limiter);
                let req = &req;
                async move {
                    let decision = limiter.admit(req).await.expect("limiter");
                    assert!(decision.is_admitted());
                }
            })
        });
    }
}

fn in_process(c: &mut Criterion) {
    let clock = FixedClock::at_millis(1_790_000_000_000);
    let limiter = Arc::new(MemoryLimiter::new(Arc::new(clock.clone())));
    bench_limiter(c, &runtime(), "memory", limiter, &clock);
}

fn on_redis(c: &mut Criterion) {
    let Some(url) = std::env::var("KEYGATE_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        println!("skipping Redis limiter benchmarks: KEYGATE_TEST_REDIS_URL is unset");
        return;
    };
    let clock = FixedClock::at_millis(1_790_000_000_000);
    let namespace = format!("bench:{:016x}", rand::random::<u64>());
    let runtime = runtime();
    let limiter = runtime
        .block_on(RedisLimiter::connect(
            &url,
            &namespace,
            Arc::new(clock.clone()),
        ))
        .expect("Redis at KEYGATE_TEST_REDIS_URL");
    bench_limiter(c, &runtime, "redis", Arc::new(limiter), &clock);
}

criterion_group!(benches, in_process, on_redis);
criterion_main!(benches);
