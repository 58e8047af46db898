//! What every limiter must do, whatever stores its counters.

use std::time::Duration;

use keygate_core::limits::ResetPeriod;
use keygate_core::{Denial, FixedClock, Micros};
use keygate_limits::{Admission, LimitKind};

use crate::backends::backend_tests;
use crate::{
    admission, at, cost, dollars, reserved, state_of, subject, tokens, window, with_windows, Shared,
};

backend_tests!(conformance:
    rolling_window_refuses_over_limit_until_the_oldest_request_leaves,
    stacked_windows_wait_for_the_longest,
    a_denial_consumes_nothing,
    budgets_refuse_over_limit_and_at_limit_in_order,
    spend_cap_and_credits_answer_402_codes,
    credits_are_shared_by_the_workspace,
    recorded_usage_can_exceed_and_then_refuses,
    reservations_hold_until_settled_or_released,
    settle_is_idempotent_and_may_exceed_the_hold,
    expired_reservations_release_their_hold,
    status_consumes_nothing_and_reports_every_limit,
    forget_key_resets_its_counters,
    a_zero_limit_never_admits,
);

pub async fn rolling_window_refuses_over_limit_until_the_oldest_request_leaves(
    limiter: Shared,
    clock: &FixedClock,
) {
    let req = with_windows("key_roll", &[window(3, 10)]);
    for _ in 0..3 {
        assert!(limiter.admit(&req).await.unwrap().is_admitted());
        clock.advance_millis(1000);
    }
    // t = 3.0 s: the requests at 0, 1 and 2 s are in the window.
    clock.advance_millis(-500);
    let refused = limiter.admit(&req).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::RateLimited));
    // The request at 0 s leaves at 10 s: 7.5 s away, rounded up.
    assert_eq!(refused.retry_after_secs, Some(8));
    let rate = state_of(&refused.limits, LimitKind::Rate { window_secs: 10 });
    assert_eq!((rate.limit, rate.used, rate.remaining), (3, 3, 0));
    assert_eq!(rate.reset_at, Some(at(2026, 11, 25, 12, 0, 10)));

    // One millisecond before the oldest leaves: still refused. At the instant: admitted.
    clock.set(at(2026, 11, 25, 12, 0, 10) - chrono::Duration::milliseconds(1));
    assert!(!limiter.admit(&req).await.unwrap().is_admitted());
    clock.advance_millis(1);
    let admitted = limiter.admit(&req).await.unwrap();
    assert!(admitted.is_admitted());
    assert_eq!(admitted.retry_after_secs, None);
}

pub async fn stacked_windows_wait_for_the_longest(limiter: Shared, clock: &FixedClock) {
    let req = with_windows("key_stack", &[window(4, 60), window(2, 1)]);
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    let refused = limiter.admit(&req).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::RateLimited));
    assert_eq!(refused.retry_after_secs, Some(1));
    clock.advance_millis(1000);
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    clock.advance_millis(1000);
    // The per-second window has room, the per-minute one is full until 60 s after the first.
    let refused = limiter.admit(&req).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::RateLimited));
    assert_eq!(refused.retry_after_secs, Some(58));
    let minute = state_of(&refused.limits, LimitKind::Rate { window_secs: 60 });
    let second = state_of(&refused.limits, LimitKind::Rate { window_secs: 1 });
    assert_eq!((minute.used, minute.remaining), (4, 0));
    assert_eq!((second.used, second.remaining), (0, 2));
}

pub async fn a_denial_consumes_nothing(limiter: Shared, _clock: &FixedClock) {
    let req = Admission {
        token_limit: tokens(100, ResetPeriod::Daily),
        tokens: 60,
        ..with_windows("key_nothing", &[window(5, 60)])
    };
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    let refused = limiter.admit(&req).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::TokenLimitReached));
    let rate = state_of(&refused.limits, LimitKind::Rate { window_secs: 60 });
    assert_eq!(
        rate.used, 1,
        "a refused request must not count on the window"
    );
    assert_eq!(state_of(&refused.limits, LimitKind::Tokens).used, 60);

    let fits = Admission { tokens: 40, ..req };
    let admitted = limiter.admit(&fits).await.unwrap();
    assert!(admitted.is_admitted());
    assert_eq!(state_of(&admitted.limits, LimitKind::Tokens).remaining, 0);
    let rate = state_of(&admitted.limits, LimitKind::Rate { window_secs: 60 });
    assert_eq!(rate.used, 2);
}

pub async fn budgets_refuse_over_limit_and_at_limit_in_order(limiter: Shared, _clock: &FixedClock) {
    let req = Admission {
        token_limit: tokens(1000, ResetPeriod::Daily),
        cost_limit: cost("1.00", ResetPeriod::Monthly),
        tokens: 600,
        cost: dollars("0.60"),
        ..admission("key_budgets")
    };
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    // Both budgets would go over: the token limit is reported, it is checked first.
    let refused = limiter.admit(&req).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::TokenLimitReached));
    // Noon to midnight.
    assert_eq!(refused.retry_after_secs, Some(12 * 3600));

    let cost_only = Admission {
        tokens: 400,
        ..req.clone()
    };
    let refused = limiter.admit(&cost_only).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::CostLimitReached));
    // Until 2026-12-01 00:00 UTC: 5 days and 12 hours.
    assert_eq!(refused.retry_after_secs, Some(5 * 86_400 + 12 * 3600));

    // Exactly up to the limit is allowed...
    let exact = Admission {
        tokens: 400,
        cost: dollars("0.40"),
        ..req.clone()
    };
    let admitted = limiter.admit(&exact).await.unwrap();
    assert!(admitted.is_admitted());
    let spent = state_of(&admitted.limits, LimitKind::Cost);
    assert_eq!(
        (spent.limit, spent.used, spent.remaining),
        (1_000_000, 1_000_000, 0)
    );
    // ...and then even a request that asks for nothing is refused.
    let nothing = Admission {
        tokens: 0,
        cost: Micros::ZERO,
        ..req
    };
    let refused = limiter.admit(&nothing).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::TokenLimitReached));
}

pub async fn spend_cap_and_credits_answer_402_codes(limiter: Shared, clock: &FixedClock) {
    let req = Admission {
        cost_limit: cost("10.00", ResetPeriod::Monthly),
        daily_spend_cap: Some(dollars("1.00")),
        cost: dollars("0.70"),
        ..admission("key_cap")
    };
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    let refused = limiter.admit(&req).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::SpendCapReached));
    assert_eq!(refused.denial.map(Denial::status), Some(402));
    assert_eq!(refused.retry_after_secs, Some(12 * 3600));
    let cap = state_of(&refused.limits, LimitKind::DailySpendCap);
    assert_eq!((cap.used, cap.remaining), (700_000, 300_000));
    assert_eq!(cap.reset_at, Some(at(2026, 11, 26, 0, 0, 0)));

    // The next day the cap is fresh while the monthly cost limit still counts yesterday.
    clock.set(at(2026, 11, 26, 0, 0, 0));
    let admitted = limiter.admit(&req).await.unwrap();
    assert!(admitted.is_admitted());
    assert_eq!(state_of(&admitted.limits, LimitKind::Cost).used, 1_400_000);
    assert_eq!(
        state_of(&admitted.limits, LimitKind::DailySpendCap).used,
        700_000
    );

    let broke = Admission {
        credit_balance: Some(dollars("2.00")),
        ..req
    };
    let refused = limiter.admit(&broke).await.unwrap();
    // Today's cap is still reached; it is checked before the workspace's credit.
    assert_eq!(refused.denial, Some(Denial::SpendCapReached));
    clock.set(at(2026, 11, 27, 0, 0, 0));
    let refused = limiter.admit(&broke).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::InsufficientCredits));
    assert_eq!(refused.retry_after_secs, None);
    let credits = state_of(&refused.limits, LimitKind::Credits);
    assert_eq!(
        (credits.limit, credits.used, credits.remaining),
        (2_000_000, 1_400_000, 600_000)
    );
}

pub async fn credits_are_shared_by_the_workspace(limiter: Shared, _clock: &FixedClock) {
    let a = Admission {
        credit_balance: Some(dollars("1.00")),
        cost: dollars("0.60"),
        ..admission("key_credit_a")
    };
    let b = Admission {
        subject: subject("key_credit_b"),
        cost: dollars("0.50"),
        ..a.clone()
    };
    assert!(limiter.admit(&a).await.unwrap().is_admitted());
    let refused = limiter.admit(&b).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::InsufficientCredits));
    // Another workspace is not affected.
    let other = Admission {
        subject: keygate_limits::Subject::new("ws_other", "key_credit_c"),
        ..b
    };
    assert!(limiter.admit(&other).await.unwrap().is_admitted());
}

pub async fn recorded_usage_can_exceed_and_then_refuses(limiter: Shared, _clock: &FixedClock) {
    let req = Admission {
        token_limit: tokens(1000, ResetPeriod::Weekly),
        cost_limit: cost("5.00", ResetPeriod::Never),
        credit_balance: Some(dollars("100")),
        ..admission("key_record")
    };
    limiter
        .record(&req.subject, 2500, dollars("1.25"))
        .await
        .unwrap();
    let refused = limiter.admit(&req).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::TokenLimitReached));
    let used = state_of(&refused.limits, LimitKind::Tokens);
    assert_eq!((used.used, used.remaining), (2500, 0));
    // Weekly: from Wednesday noon to Monday 00:00 is 4.5 days.
    assert_eq!(refused.retry_after_secs, Some(4 * 86_400 + 12 * 3600));
    assert_eq!(state_of(&refused.limits, LimitKind::Cost).used, 1_250_000);
    assert_eq!(state_of(&refused.limits, LimitKind::Cost).reset_at, None);
    assert_eq!(
        state_of(&refused.limits, LimitKind::Credits).used,
        1_250_000
    );

    let over_lifetime = Admission {
        token_limit: None,
        cost: dollars("4.00"),
        ..req
    };
    let refused = limiter.admit(&over_lifetime).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::CostLimitReached));
    assert_eq!(refused.retry_after_secs, None, "a budget that never resets");
}

pub async fn reservations_hold_until_settled_or_released(limiter: Shared, _clock: &FixedClock) {
    let ttl = Duration::from_secs(60);
    let req = Admission {
        token_limit: tokens(1000, ResetPeriod::Monthly),
        credit_balance: Some(dollars("1.00")),
        tokens: 500,
        cost: dollars("0.50"),
        ..admission("key_hold")
    };
    let held = limiter.reserve(&req, ttl).await.unwrap();
    assert!(held.is_admitted());
    let first = held.reservation_id.expect("a reservation id");
    assert_eq!(state_of(&held.limits, LimitKind::Tokens).used, 500);
    assert_eq!(state_of(&held.limits, LimitKind::Credits).used, 500_000);

    let too_much = Admission {
        tokens: 600,
        ..req.clone()
    };
    let refused = limiter.reserve(&too_much, ttl).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::TokenLimitReached));
    assert_eq!(refused.reservation_id, None);

    assert!(limiter
        .settle(&req.subject, &first, 200, dollars("0.20"))
        .await
        .unwrap());
    let status = limiter.status(&req).await.unwrap();
    assert_eq!(state_of(&status, LimitKind::Tokens).used, 200);
    assert_eq!(state_of(&status, LimitKind::Credits).used, 200_000);

    let second = limiter
        .reserve(&too_much, ttl)
        .await
        .unwrap()
        .reservation_id
        .expect("fits after settling");
    assert!(limiter.release(&req.subject, &second).await.unwrap());
    assert!(!limiter.release(&req.subject, &second).await.unwrap());
    let status = limiter.status(&req).await.unwrap();
    assert_eq!(state_of(&status, LimitKind::Tokens).used, 200);
    assert_eq!(state_of(&status, LimitKind::Credits).used, 200_000);
    assert!(!limiter.release(&req.subject, "rsv_unknown").await.unwrap());
    assert!(!limiter
        .settle(&req.subject, "", 1, Micros(1))
        .await
        .unwrap());
}

pub async fn settle_is_idempotent_and_may_exceed_the_hold(limiter: Shared, _clock: &FixedClock) {
    let req = Admission {
        cost_limit: cost("1.00", ResetPeriod::Daily),
        daily_spend_cap: Some(dollars("5.00")),
        cost: dollars("0.10"),
        ..admission("key_settle")
    };
    let id = reserved(&limiter, &req, Duration::from_secs(30)).await;
    let owner = &req.subject;
    assert!(limiter
        .settle(owner, &id, 0, dollars("0.35"))
        .await
        .unwrap());
    assert!(!limiter
        .settle(owner, &id, 0, dollars("0.35"))
        .await
        .unwrap());
    assert!(!limiter.release(owner, &id).await.unwrap());
    let status = limiter.status(&req).await.unwrap();
    assert_eq!(state_of(&status, LimitKind::Cost).used, 350_000);
    assert_eq!(state_of(&status, LimitKind::DailySpendCap).used, 350_000);
}

pub async fn expired_reservations_release_their_hold(limiter: Shared, clock: &FixedClock) {
    let req = Admission {
        token_limit: tokens(100, ResetPeriod::Daily),
        credit_balance: Some(dollars("1.00")),
        tokens: 100,
        cost: dollars("1.00"),
        ..admission("key_expire")
    };
    let id = reserved(&limiter, &req, Duration::from_secs(30)).await;
    clock.advance_millis(29_999);
    assert_eq!(
        limiter.admit(&req).await.unwrap().denial,
        Some(Denial::TokenLimitReached)
    );
    // The caller never came back: after the ttl the hold is gone, without any sweeper task.
    clock.advance_millis(1);
    let status = limiter.status(&req).await.unwrap();
    assert_eq!(state_of(&status, LimitKind::Tokens).used, 0);
    assert_eq!(state_of(&status, LimitKind::Credits).used, 0);
    assert!(!limiter
        .settle(&req.subject, &id, 100, dollars("1.00"))
        .await
        .unwrap());
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
}

pub async fn status_consumes_nothing_and_reports_every_limit(limiter: Shared, _clock: &FixedClock) {
    let req = Admission {
        token_limit: tokens(10, ResetPeriod::Daily),
        cost_limit: cost("1", ResetPeriod::Weekly),
        daily_spend_cap: Some(dollars("0.5")),
        credit_balance: Some(dollars("3")),
        tokens: 5,
        cost: dollars("0.25"),
        ..with_windows("key_status", &[window(2, 60), window(100, 3600)])
    };
    for _ in 0..3 {
        let status = limiter.status(&req).await.unwrap();
        assert_eq!(status.len(), 6);
        assert!(status.iter().all(|s| s.used == 0 && s.remaining == s.limit));
    }
    limiter.admit(&req).await.unwrap();
    let status = limiter.status(&req).await.unwrap();
    let used: Vec<i64> = status.iter().map(|s| s.used).collect();
    assert_eq!(used, vec![1, 1, 5, 250_000, 250_000, 250_000]);
}

pub async fn forget_key_resets_its_counters(limiter: Shared, _clock: &FixedClock) {
    let req = Admission {
        token_limit: tokens(10, ResetPeriod::Never),
        tokens: 10,
        ..with_windows("key_forget", &[window(1, 60)])
    };
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    assert!(!limiter.admit(&req).await.unwrap().is_admitted());
    limiter.forget_key("key_forget").await.unwrap();
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
}

pub async fn a_zero_limit_never_admits(limiter: Shared, clock: &FixedClock) {
    let req = with_windows("key_zero", &[window(0, 60)]);
    let refused = limiter.admit(&req).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::RateLimited));
    assert_eq!(refused.retry_after_secs, None);
    clock.advance_millis(3_600_000);
    assert!(!limiter.admit(&req).await.unwrap().is_admitted());
    let budget = Admission {
        token_limit: tokens(0, ResetPeriod::Daily),
        ..admission("key_zero_budget")
    };
    assert_eq!(
        limiter.admit(&budget).await.unwrap().denial,
        Some(Denial::TokenLimitReached)
    );
}
