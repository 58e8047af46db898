//! Rolling windows against an exact reference model, over random histories: never more than
//! the limit in any window, never a refusal under it, and a Retry-After that is never early
//! (and not a second later than needed). And all or nothing across a key, its identity and
//! its workspace (below).

use keygate_core::limits::{CostLimit, RateWindow, ResetPeriod, TokenLimit};
use keygate_core::{Clock, Denial, FixedClock, Micros};
use keygate_limits::{Admission, IdentityLimits, LimitKind, LimitScope, LimitState, Subject};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use crate::backends::{memory, redis, runtime};
use crate::{noon, window, with_windows, Shared};

#[derive(Debug, Clone)]
enum Step {
    Request,
    Advance(i64),
}

fn steps(max_advance_ms: i64) -> impl Strategy<Value = Vec<Step>> {
    vec(
        prop_oneof![
            4 => Just(Step::Request),
            2 => (0..1_500_i64).prop_map(Step::Advance),
            1 => (0..max_advance_ms).prop_map(Step::Advance),
        ],
        1..150,
    )
}

fn windows() -> impl Strategy<Value = Vec<RateWindow>> {
    let one = (
        1_u64..6,
        prop_oneof![Just(1_u64), Just(2), Just(10), Just(60), Just(3600)],
    )
        .prop_map(|(limit, secs)| window(limit, secs));
    vec(one, 1..3)
}

/// The obviously-correct model: every admitted instant, checked against every window.
struct Model {
    admitted: Vec<i64>,
}

impl Model {
    fn in_window(&self, now: i64, w: &RateWindow) -> u64 {
        self.admitted
            .iter()
            .filter(|t| now - **t < w.window.millis())
            .count() as u64
    }

    fn admits(&self, now: i64, windows: &[RateWindow]) -> bool {
        windows.iter().all(|w| self.in_window(now, w) < w.limit)
    }
}

async fn check(limiter: Shared, clock: &FixedClock, windows: &[RateWindow], steps: &[Step]) {
    let req = with_windows("key_model", windows);
    let mut model = Model {
        admitted: Vec::new(),
    };
    for step in steps {
        match step {
            Step::Advance(ms) => clock.advance_millis(*ms),
            Step::Request => {
                let now = clock.now_millis();
                let expected = model.admits(now, windows);
                let decision = limiter.admit(&req).await.expect("limiter");
                assert_eq!(decision.is_admitted(), expected, "at {now}: {decision:?}");
                if expected {
                    model.admitted.push(now);
                    assert_eq!(decision.retry_after_secs, None);
                } else {
                    let retry = decision.retry_after_secs.expect("a finite wait") as i64;
                    assert!(
                        model.admits(now + retry * 1000, windows),
                        "Retry-After {retry}s is early"
                    );
                    assert!(
                        retry == 0 || !model.admits(now + (retry - 1) * 1000, windows),
                        "Retry-After {retry}s is more than a second late"
                    );
                }
                for w in windows {
                    let kind = LimitKind::Rate {
                        window_secs: w.window.secs(),
                    };
                    let state = decision
                        .limits
                        .iter()
                        .find(|s| s.kind == kind && s.limit == w.limit as i64)
                        .expect("window state");
                    assert_eq!(state.used as u64, model.in_window(now, w));
                }
            }
        }
    }
    // Never more than the limit in any window: count behind every admitted instant.
    for w in windows {
        for t in &model.admitted {
            let inside = model
                .admitted
                .iter()
                .filter(|s| *s <= t && t - **s < w.window.millis())
                .count() as u64;
            assert!(inside <= w.limit);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn memory_windows_match_the_exact_model(windows in windows(), steps in steps(120_000)) {
        let clock = noon();
        runtime().block_on(check(memory(&clock), &clock, &windows, &steps));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    #[ignore = "needs Redis: KEYGATE_TEST_REDIS_URL (scripts/test sets it when Redis answers)"]
    fn redis_windows_match_the_exact_model(windows in windows(), steps in steps(120_000)) {
        runtime().block_on(async {
            let clock = noon();
            let limiter = redis(&clock, "model").await;
            check(limiter, &clock, &windows, &steps).await;
        });
    }
}

// All or nothing across scopes: a key, its identity and its workspace, with random limits,
// under random admits, reservations, settles, releases and records. Before every call the
// status of both keys of the identity and of a second identity is read; after it, a refused
// call must have left every counter as it was, and an admitted one must have moved each by
// exactly its amount (the refusal itself must be the first limit, in the documented order,
// that the status before says refuses).

/// One scope's limits (a key's or the identity's).
#[derive(Debug, Clone)]
struct ScopeSpec {
    windows: Vec<RateWindow>,
    tokens: Option<TokenLimit>,
    cost: Option<CostLimit>,
    cap: Option<Micros>,
}

#[derive(Debug, Clone)]
struct Spec {
    keys: [ScopeSpec; 2],
    identity: ScopeSpec,
    credits: Option<Micros>,
}

/// Who a caller says the key belongs to now: no identity, the one everything is made
/// under, or another.
#[derive(Debug, Clone, Copy)]
enum Claim {
    None,
    Same,
    Other,
}

#[derive(Debug, Clone)]
enum Op {
    Admit {
        key: usize,
        tokens: u64,
        cost: i64,
    },
    Reserve {
        key: usize,
        tokens: u64,
        cost: i64,
        ttl_ms: u64,
    },
    Settle {
        which: usize,
        stranger: bool,
        claim: Claim,
        tokens: u64,
        cost: i64,
    },
    Release {
        which: usize,
        stranger: bool,
        claim: Claim,
    },
    Record {
        key: usize,
        claim: Claim,
        tokens: u64,
        cost: i64,
    },
    Advance(i64),
}

fn period() -> impl Strategy<Value = ResetPeriod> {
    prop_oneof![
        Just(ResetPeriod::Daily),
        Just(ResetPeriod::Weekly),
        Just(ResetPeriod::Monthly),
        Just(ResetPeriod::Never),
    ]
}

fn scope_spec() -> impl Strategy<Value = ScopeSpec> {
    // Mostly room for a few requests, sometimes none; windows of one length sometimes.
    let limit = prop_oneof![1 => Just(0_u64), 8 => 1_u64..10];
    let one = (limit, prop_oneof![Just(1_u64), Just(10), Just(60)])
        .prop_map(|(limit, secs)| window(limit, secs));
    (
        vec(one, 0..3),
        option::of((0_u64..1500, period()).prop_map(|(limit, reset)| TokenLimit { limit, reset })),
        option::of(
            (0_i64..1_500_000, period()).prop_map(|(limit, reset)| CostLimit {
                limit: Micros(limit),
                reset,
            }),
        ),
        option::of((0_i64..1_500_000).prop_map(Micros)),
    )
        .prop_map(|(windows, tokens, cost, cap)| ScopeSpec {
            windows,
            tokens,
            cost,
            cap,
        })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        scope_spec(),
        scope_spec(),
        scope_spec(),
        option::of((0_i64..3_000_000).prop_map(Micros)),
    )
        .prop_map(|(a, b, identity, credits)| Spec {
            keys: [a, b],
            identity,
            credits,
        })
}

fn claim() -> impl Strategy<Value = Claim> {
    prop_oneof![Just(Claim::None), Just(Claim::Same), Just(Claim::Other)]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let tokens = 0_u64..400;
    let cost = 0_i64..400_000;
    let op = prop_oneof![
        4 => (0_usize..2, tokens.clone(), cost.clone())
            .prop_map(|(key, tokens, cost)| Op::Admit { key, tokens, cost }),
        3 => (0_usize..2, tokens.clone(), cost.clone(), 1_u64..120_000)
            .prop_map(|(key, tokens, cost, ttl_ms)| Op::Reserve { key, tokens, cost, ttl_ms }),
        3 => (0_usize..8, proptest::bool::weighted(0.15), claim(), tokens.clone(), cost.clone())
            .prop_map(|(which, stranger, claim, tokens, cost)| Op::Settle {
                which,
                stranger,
                claim,
                tokens,
                cost,
            }),
        1 => (0_usize..8, proptest::bool::weighted(0.15), claim())
            .prop_map(|(which, stranger, claim)| Op::Release { which, stranger, claim }),
        1 => (0_usize..2, claim(), tokens, cost)
            .prop_map(|(key, claim, tokens, cost)| Op::Record { key, claim, tokens, cost }),
        2 => (0_i64..90_000).prop_map(Op::Advance),
    ];
    vec(op, 1..40)
}

const KEYS: [&str; 2] = ["key_all_0", "key_all_1"];
const IDENTITY: &str = "idn_all";
const OTHER: &str = "idn_all_other";

fn claimed(key: &str, claim: Claim) -> Subject {
    let identity = match claim {
        Claim::None => None,
        Claim::Same => Some(IDENTITY),
        Claim::Other => Some(OTHER),
    };
    Subject::new("ws_all", key).with_identity(identity)
}

fn identity_limits(id: &str, spec: &ScopeSpec) -> IdentityLimits {
    IdentityLimits {
        identity_id: id.to_owned(),
        rate_limits: spec.windows.clone(),
        token_limit: spec.tokens,
        cost_limit: spec.cost,
        daily_spend_cap: spec.cap,
    }
}

/// A request of key `key` (under the identity) for `tokens` and `cost`.
fn request(spec: &Spec, key: usize, tokens: u64, cost: i64) -> Admission {
    let own = &spec.keys[key];
    Admission {
        rate_limits: own.windows.clone(),
        token_limit: own.tokens,
        cost_limit: own.cost,
        daily_spend_cap: own.cap,
        identity: Some(identity_limits(IDENTITY, &spec.identity)),
        credit_balance: spec.credits,
        tokens,
        cost: Micros(cost),
        ..Admission::new(claimed(KEYS[key], Claim::Same))
    }
}

/// What the other identity has: every budget, counted forever, through a key that spends
/// nothing.
fn other_probe(spec: &Spec) -> Admission {
    let counted = ScopeSpec {
        windows: Vec::new(),
        tokens: Some(TokenLimit {
            limit: 1 << 40,
            reset: ResetPeriod::Never,
        }),
        cost: Some(CostLimit {
            limit: Micros(1 << 40),
            reset: ResetPeriod::Never,
        }),
        cap: Some(Micros(1 << 40)),
    };
    Admission {
        identity: Some(identity_limits(OTHER, &counted)),
        credit_balance: spec.credits,
        ..Admission::new(claimed("key_all_probe", Claim::Other))
    }
}

/// What a call must have changed: one more request on the windows of `key` and the identity
/// (`rate`), and `tokens`/`cost` on the budgets of `key` (if any), of the identity and of the
/// other identity (as flagged), and `cost` on the credits.
#[derive(Default, Clone, Copy)]
struct Delta {
    key: Option<usize>,
    identity: bool,
    other: bool,
    rate: bool,
    tokens: i64,
    cost: i64,
}

/// How many states a scope's limits report.
fn states_of(spec: &ScopeSpec) -> usize {
    spec.windows.len()
        + usize::from(spec.tokens.is_some())
        + usize::from(spec.cost.is_some())
        + usize::from(spec.cap.is_some())
}

/// The status of both keys of the identity and of the other identity's probe, each the
/// key's states, then the identity's, then the workspace's.
async fn snapshot(limiter: &Shared, spec: &Spec) -> Vec<Vec<LimitState>> {
    let mut all = Vec::new();
    for key in 0..2 {
        all.push(
            limiter
                .status(&request(spec, key, 0, 0))
                .await
                .expect("status"),
        );
    }
    all.push(limiter.status(&other_probe(spec)).await.expect("status"));
    let credits = usize::from(spec.credits.is_some());
    for (states, (key, identity)) in all.iter().zip([
        (states_of(&spec.keys[0]), states_of(&spec.identity)),
        (states_of(&spec.keys[1]), states_of(&spec.identity)),
        (0, 3),
    ]) {
        let scopes: Vec<LimitScope> = states.iter().map(|s| s.scope).collect();
        let mut expected = vec![LimitScope::Key; key];
        expected.extend(vec![LimitScope::Identity; identity]);
        expected.extend(vec![LimitScope::Workspace; credits]);
        assert_eq!(scopes, expected, "{states:?}");
    }
    all
}

fn expected(before: &[Vec<LimitState>], delta: Delta) -> Vec<Vec<(LimitKind, LimitScope, i64)>> {
    before
        .iter()
        .enumerate()
        .map(|(which, states)| {
            states
                .iter()
                .map(|s| {
                    let moved = match s.scope {
                        LimitScope::Key => delta.key == Some(which),
                        LimitScope::Identity if which < 2 => delta.identity,
                        LimitScope::Identity => delta.other,
                        LimitScope::Workspace => true,
                    };
                    let change = match s.kind {
                        _ if !moved => 0,
                        LimitKind::Rate { .. } => i64::from(delta.rate),
                        LimitKind::Tokens => delta.tokens,
                        LimitKind::Cost | LimitKind::DailySpendCap | LimitKind::Credits => {
                            delta.cost
                        }
                    };
                    (s.kind, s.scope, s.used + change)
                })
                .collect()
        })
        .collect()
}

fn used(all: &[Vec<LimitState>]) -> Vec<Vec<(LimitKind, LimitScope, i64)>> {
    all.iter()
        .map(|states| states.iter().map(|s| (s.kind, s.scope, s.used)).collect())
        .collect()
}

/// The first limit that refuses, by the documented order, judging from a key's status.
fn first_refusal(states: &[LimitState], tokens: i64, cost: i64) -> Option<(Denial, LimitScope)> {
    let scopes = [LimitScope::Key, LimitScope::Identity];
    for scope in scopes {
        let full = states.iter().any(|s| {
            s.scope == scope && matches!(s.kind, LimitKind::Rate { .. }) && s.used >= s.limit
        });
        if full {
            return Some((Denial::RateLimited, scope));
        }
    }
    let refuses = |s: &LimitState, amount: i64| s.used >= s.limit || s.used + amount > s.limit;
    for scope in scopes {
        for (kind, denial, amount) in [
            (LimitKind::Tokens, Denial::TokenLimitReached, tokens),
            (LimitKind::Cost, Denial::CostLimitReached, cost),
            (LimitKind::DailySpendCap, Denial::SpendCapReached, cost),
        ] {
            let state = states.iter().find(|s| s.scope == scope && s.kind == kind);
            if state.is_some_and(|s| refuses(s, amount)) {
                return Some((denial, scope));
            }
        }
    }
    states
        .iter()
        .find(|s| s.kind == LimitKind::Credits)
        .filter(|s| refuses(s, cost))
        .map(|_| (Denial::InsufficientCredits, LimitScope::Workspace))
}

/// A reservation as the test remembers it.
struct Held {
    id: String,
    key: usize,
    tokens: i64,
    cost: i64,
    deadline: i64,
    open: bool,
}

async fn check_all_or_nothing(limiter: Shared, clock: &FixedClock, spec: &Spec, ops: &[Op]) {
    let mut holds: Vec<Held> = Vec::new();
    for op in ops {
        if let Op::Advance(ms) = op {
            clock.advance_millis(*ms);
            continue;
        }
        let now = clock.now_millis();
        let before = snapshot(&limiter, spec).await;
        let delta = match *op {
            Op::Admit { key, tokens, cost }
            | Op::Reserve {
                key, tokens, cost, ..
            } => {
                let req = request(spec, key, tokens, cost);
                let decision = match *op {
                    Op::Reserve { ttl_ms, .. } => {
                        let ttl = std::time::Duration::from_millis(ttl_ms);
                        limiter.reserve(&req, ttl).await.expect("reserve")
                    }
                    _ => limiter.admit(&req).await.expect("admit"),
                };
                let refusal = first_refusal(&before[key], tokens as i64, cost);
                assert_eq!(
                    decision.denial.zip(decision.denied_by),
                    refusal,
                    "{op:?} against {:?}",
                    before[key]
                );
                if !decision.is_admitted() {
                    assert_eq!(decision.reservation_id, None);
                    Delta::default()
                } else {
                    if let (Op::Reserve { ttl_ms, .. }, Some(id)) = (op, &decision.reservation_id) {
                        holds.push(Held {
                            id: id.clone(),
                            key,
                            tokens: tokens as i64,
                            cost,
                            deadline: now + *ttl_ms as i64,
                            open: true,
                        });
                    }
                    let delta = Delta {
                        key: Some(key),
                        identity: true,
                        other: false,
                        rate: true,
                        tokens: tokens as i64,
                        cost,
                    };
                    // The decision reports the same as a status right after it.
                    let after = limiter.status(&req).await.expect("status");
                    assert_eq!(decision.limits, after, "{op:?}");
                    delta
                }
            }
            Op::Settle { .. } | Op::Release { .. } if holds.is_empty() => continue,
            Op::Settle {
                which,
                stranger,
                claim,
                tokens,
                cost,
            } => {
                let count = holds.len();
                let held = &mut holds[which % count];
                let key = if stranger { 1 - held.key } else { held.key };
                let owner = claimed(KEYS[key], claim);
                let ended = limiter
                    .settle(&owner, &held.id, tokens, Micros(cost))
                    .await
                    .expect("settle");
                let expect = held.open && !stranger && now < held.deadline;
                assert_eq!(ended, expect, "{op:?}");
                if !ended {
                    Delta::default()
                } else {
                    held.open = false;
                    Delta {
                        key: Some(held.key),
                        identity: true,
                        other: false,
                        rate: false,
                        tokens: tokens as i64 - held.tokens,
                        cost: cost - held.cost,
                    }
                }
            }
            Op::Release {
                which,
                stranger,
                claim,
            } => {
                let count = holds.len();
                let held = &mut holds[which % count];
                let key = if stranger { 1 - held.key } else { held.key };
                let ended = limiter
                    .release(&claimed(KEYS[key], claim), &held.id)
                    .await
                    .expect("release");
                let expect = held.open && !stranger && now < held.deadline;
                assert_eq!(ended, expect, "{op:?}");
                if !ended {
                    Delta::default()
                } else {
                    held.open = false;
                    Delta {
                        key: Some(held.key),
                        identity: true,
                        rate: false,
                        tokens: -held.tokens,
                        cost: -held.cost,
                        ..Delta::default()
                    }
                }
            }
            Op::Record {
                key,
                claim,
                tokens,
                cost,
            } => {
                limiter
                    .record(&claimed(KEYS[key], claim), tokens, Micros(cost))
                    .await
                    .expect("record");
                Delta {
                    key: Some(key),
                    identity: matches!(claim, Claim::Same),
                    other: matches!(claim, Claim::Other),
                    rate: false,
                    tokens: tokens as i64,
                    cost,
                }
            }
            Op::Advance(_) => unreachable!("handled above"),
        };
        let after = snapshot(&limiter, spec).await;
        assert_eq!(used(&after), expected(&before, delta), "{op:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn memory_a_refusal_by_any_scope_consumes_nothing_anywhere(spec in spec(), ops in ops()) {
        let clock = noon();
        runtime().block_on(check_all_or_nothing(memory(&clock), &clock, &spec, &ops));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    #[ignore = "needs Redis: KEYGATE_TEST_REDIS_URL (scripts/test sets it when Redis answers)"]
    fn redis_a_refusal_by_any_scope_consumes_nothing_anywhere(spec in spec(), ops in ops()) {
        runtime().block_on(async {
            let clock = noon();
            let limiter = redis(&clock, "all_or_nothing").await;
            check_all_or_nothing(limiter, &clock, &spec, &ops).await;
        });
    }
}
