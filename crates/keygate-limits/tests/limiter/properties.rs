//! Rolling windows against an exact reference model, over random histories: never more than
//! the limit in any window, never a refusal under it, and a Retry-After that is never early
//! (and not a second later than needed).

use keygate_core::limits::RateWindow;
use keygate_core::{Clock, FixedClock};
use keygate_limits::LimitKind;
use proptest::collection::vec;
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
