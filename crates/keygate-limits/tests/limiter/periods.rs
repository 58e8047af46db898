//! Budgets reset on UTC calendar boundaries: refused at 23:59:59, admitted at 00:00:00.

use keygate_core::limits::ResetPeriod;
use keygate_core::{Denial, FixedClock};
use keygate_limits::{Admission, LimitKind};

use crate::backends::backend_tests;
use crate::{admission, at, cost, dollars, state_of, tokens, Shared};

backend_tests!(periods:
    daily_tokens_reset_at_midnight_utc,
    weekly_cost_resets_on_monday,
    monthly_tokens_reset_on_the_first_across_the_year,
    monthly_reset_after_a_short_february,
    spend_cap_resets_at_midnight,
);

/// Uses the budget up just before `boundary`, checks it is refused for one more second with
/// an exact Retry-After, and admitted again at the boundary.
async fn exhaust_then_cross(
    limiter: &Shared,
    clock: &FixedClock,
    req: &Admission,
    boundary: chrono::DateTime<chrono::Utc>,
    denial: Denial,
) {
    clock.set(boundary - chrono::Duration::hours(1));
    assert!(limiter.admit(req).await.unwrap().is_admitted());
    clock.set(boundary - chrono::Duration::seconds(1));
    let refused = limiter.admit(req).await.unwrap();
    assert_eq!(refused.denial, Some(denial));
    assert_eq!(refused.retry_after_secs, Some(1));
    clock.set(boundary);
    let admitted = limiter.admit(req).await.unwrap();
    assert!(admitted.is_admitted(), "{admitted:?}");
}

pub async fn daily_tokens_reset_at_midnight_utc(limiter: Shared, clock: &FixedClock) {
    let req = Admission {
        token_limit: tokens(100, ResetPeriod::Daily),
        tokens: 100,
        ..admission("key_daily")
    };
    clock.set(at(2026, 11, 25, 0, 0, 0));
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    clock.set(at(2026, 11, 25, 23, 59, 59));
    let refused = limiter.admit(&req).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::TokenLimitReached));
    assert_eq!(refused.retry_after_secs, Some(1));
    let state = state_of(&refused.limits, LimitKind::Tokens);
    assert_eq!(state.reset_at, Some(at(2026, 11, 26, 0, 0, 0)));
    clock.set(at(2026, 11, 26, 0, 0, 0));
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
}

pub async fn weekly_cost_resets_on_monday(limiter: Shared, clock: &FixedClock) {
    let req = Admission {
        cost_limit: cost("2.00", ResetPeriod::Weekly),
        cost: dollars("2.00"),
        ..admission("key_weekly")
    };
    // Monday 2026-11-30 00:00 UTC ends the week that began Monday 2026-11-23.
    exhaust_then_cross(
        &limiter,
        clock,
        &req,
        at(2026, 11, 30, 0, 0, 0),
        Denial::CostLimitReached,
    )
    .await;
    // Spent on Monday: still counted on Sunday of the same week.
    clock.set(at(2026, 12, 6, 23, 59, 59));
    assert_eq!(
        limiter.admit(&req).await.unwrap().denial,
        Some(Denial::CostLimitReached)
    );
}

pub async fn monthly_tokens_reset_on_the_first_across_the_year(
    limiter: Shared,
    clock: &FixedClock,
) {
    let req = Admission {
        token_limit: tokens(50, ResetPeriod::Monthly),
        tokens: 50,
        ..admission("key_monthly")
    };
    exhaust_then_cross(
        &limiter,
        clock,
        &req,
        at(2027, 1, 1, 0, 0, 0),
        Denial::TokenLimitReached,
    )
    .await;
    clock.set(at(2027, 1, 31, 23, 59, 59));
    assert_eq!(
        limiter.admit(&req).await.unwrap().denial,
        Some(Denial::TokenLimitReached)
    );
}

pub async fn monthly_reset_after_a_short_february(limiter: Shared, clock: &FixedClock) {
    let req = Admission {
        token_limit: tokens(50, ResetPeriod::Monthly),
        tokens: 50,
        ..admission("key_february")
    };
    exhaust_then_cross(
        &limiter,
        clock,
        &req,
        at(2027, 3, 1, 0, 0, 0),
        Denial::TokenLimitReached,
    )
    .await;
}

pub async fn spend_cap_resets_at_midnight(limiter: Shared, clock: &FixedClock) {
    let req = Admission {
        daily_spend_cap: Some(dollars("0.10")),
        cost: dollars("0.10"),
        ..admission("key_cap_reset")
    };
    exhaust_then_cross(
        &limiter,
        clock,
        &req,
        at(2026, 12, 1, 0, 0, 0),
        Denial::SpendCapReached,
    )
    .await;
}
