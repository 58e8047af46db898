//! The in-process verification decision: what `pipeline::verify` costs for one request, without
//! HTTP. `bench/run.sh` measures the same decision through the network stack.
//!
//! The state is the server's own (`prepare` over an SQLite file in a temp dir, in-process
//! limiter). The hot key is looked up once before measuring, so every measured call is parse +
//! checksum + HMAC + cache hit + limit check. The key has a 60/min window and the clock moves
//! one second per call, so the window's log stays full and every call is admitted: a hot
//! key's steady state, as in `keygate-limits/benches/decision.rs`.
//!
//! `cargo bench -p keygate-server --bench verify`

use std::sync::Arc;

use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use keygate_core::limits::{KeyLimits, RateWindow, WindowLength};
use keygate_core::model::{ApiKey, KeyStatus, Scope, Workspace};
use keygate_core::verify::{classify, Requirement};
use keygate_core::{ids, EnvTag, FixedClock, Micros, PlainKey, ServerSecret};
use keygate_server::pipeline::{self, Attempt, Consumption};
use keygate_server::{prepare, AppState, ServerSettings};
use keygate_store::AuditEntry;

struct Fixture {
    state: AppState,
    workspace: Arc<Workspace>,
    clock: FixedClock,
    hot: String,
    unknown: String,
    malformed: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings =
        ServerSettings::for_database(format!("sqlite://{}", dir.path().join("k.db").display()));
    settings.secret_hex = Some(ServerSecret::generate().to_hex());
    let clock = FixedClock::at(Utc::now());
    let (state, boot) = prepare(&settings, Arc::new(clock.clone()))
        .await
        .expect("prepare");
    let boot = boot.expect("a fresh store bootstraps a workspace");
    let prefix = boot.workspace.key_prefix.clone();
    let plain = PlainKey::generate(&prefix, &EnvTag::live());
    let now = Utc::now();
    let key = ApiKey {
        id: ids::new_id("key"),
        workspace_id: boot.workspace.id.clone(),
        name: "hot".into(),
        description: None,
        environment: EnvTag::live(),
        scope: Scope::All,
        permissions: Vec::new(),
        expires_at: None,
        status: KeyStatus::Active,
        metadata: serde_json::Map::new(),
        limits: KeyLimits {
            rate_limits: vec![RateWindow {
                limit: 60,
                window: WindowLength(60),
            }],
            ..KeyLimits::default()
        },
        routing_rule_id: None,
        identity_id: None,
        display: plain.display(),
        legacy: false,
        created_by: boot.owner.id.clone(),
        created_at: now,
        updated_at: now,
        last_used_at: None,
        version: 1,
    };
    let audit = AuditEntry {
        id: ids::new_id("aud"),
        workspace_id: key.workspace_id.clone(),
        actor: boot.owner.id.clone(),
        action: "key.create".into(),
        target_type: "key".into(),
        target_id: key.id.clone(),
        changes: serde_json::json!({}),
        source_ip: None,
        user_agent: None,
        request_id: String::new(),
        at: now,
    };
    state
        .store
        .create_key(&key, &state.secret.hash_key(&plain), false, &audit)
        .await
        .expect("create key");
    let workspace = state
        .workspace(&boot.workspace.id)
        .await
        .expect("workspace");
    let hot = plain.expose().to_owned();
    let mut malformed = hot.clone();
    let last = malformed.pop().unwrap_or('0');
    malformed.push(if last == 'A' { 'B' } else { 'A' });
    let unknown = PlainKey::generate(&prefix, &EnvTag::live())
        .expose()
        .to_owned();
    Fixture {
        state,
        workspace,
        clock,
        hot,
        unknown,
        malformed,
        _dir: dir,
    }
}

fn attempt(key: &str) -> Attempt<'_> {
    Attempt {
        key: Some(key),
        requirement: Requirement {
            project: None,
            permissions: &[],
        },
        policy: None,
        tokens: 0,
        cost: Micros(0),
        consumption: Consumption::Admit,
    }
}

fn decision(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let f = rt.block_on(fixture());
    // Fill the caches (the hot key and the unknown key's "not found") and check the verdicts.
    rt.block_on(async {
        let hot = pipeline::verify(&f.state, Some(&f.workspace), &attempt(&f.hot))
            .await
            .expect("verify");
        assert_eq!(hot.denial, None, "the hot key must be valid");
        let unknown = pipeline::verify(&f.state, Some(&f.workspace), &attempt(&f.unknown))
            .await
            .expect("verify");
        assert!(unknown.denial.is_some(), "the unknown key must be refused");
    });

    let mut group = c.benchmark_group("verify");
    group.bench_function("hot_key", |b| {
        b.to_async(&rt).iter(|| async {
            f.clock.advance_millis(1000);
            let outcome = pipeline::verify(&f.state, Some(&f.workspace), &attempt(&f.hot))
                .await
                .expect("verify");
            debug_assert!(outcome.denial.is_none());
            black_box(outcome)
        });
    });
    group.bench_function("unknown_key_cached", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                pipeline::verify(&f.state, Some(&f.workspace), &attempt(&f.unknown))
                    .await
                    .expect("verify"),
            )
        });
    });
    group.bench_function("malformed_key", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                pipeline::verify(&f.state, Some(&f.workspace), &attempt(&f.malformed))
                    .await
                    .expect("verify"),
            )
        });
    });
    group.finish();

    // The steps, to see where the time goes.
    let mut steps = c.benchmark_group("verify_steps");
    steps.bench_function("parse_and_checksum", |b| {
        b.iter(|| black_box(classify(Some(black_box(f.hot.as_str())))).is_ok());
    });
    steps.bench_function("hmac_sha256", |b| {
        let presented = PlainKey::from_untrusted(f.hot.as_str());
        b.iter(|| black_box(f.state.secret.hash_key(black_box(&presented))));
    });
    steps.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
