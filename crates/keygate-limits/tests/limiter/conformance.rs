//! What every limiter must do, whatever stores its counters.

use std::time::Duration;

use keygate_core::limits::ResetPeriod;
use keygate_core::{Denial, FixedClock, Micros};
use keygate_limits::{Admission, Decision, LimitKind, LimitScope, Subject};

use crate::backends::backend_tests;
use crate::{
    admission, at, cost, dollars, identity, reserved, scoped, state_of, subject, tokens, under,
    window, with_windows, Shared,
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
    an_identity_counts_once_for_all_its_keys,
    a_tighter_key_limit_denies_without_touching_the_identity,
    an_identity_limit_denies_without_touching_the_key,
    a_credit_denial_consumes_neither_key_nor_identity,
    scopes_are_checked_in_order,
    key_and_identity_windows_are_separate_logs,
    a_reservation_settles_on_the_identity_it_was_made_under,
    record_charges_the_identity,
    an_identity_without_limits_still_counts_its_usage,
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

/// Admits `req`, which must be refused by `scope` with `denial`, and checks that the refusal
/// changed nothing: the status of `req` and of every one of `others` is the same after as
/// before.
async fn refused_without_trace(
    limiter: &Shared,
    req: &Admission,
    others: &[&Admission],
    denial: Denial,
    scope: LimitScope,
) -> Decision {
    let mut watched = vec![req];
    watched.extend_from_slice(others);
    let mut before = Vec::new();
    for r in &watched {
        before.push(limiter.status(r).await.unwrap());
    }
    let decision = limiter.admit(req).await.unwrap();
    assert_eq!(decision.denial, Some(denial), "{decision:?}");
    assert_eq!(decision.denied_by, Some(scope), "{decision:?}");
    assert_eq!(
        decision.limits, before[0],
        "the decision reports what it found"
    );
    for (r, before) in watched.iter().zip(&before) {
        assert_eq!(&limiter.status(r).await.unwrap(), before, "{:?}", r.subject);
    }
    decision
}

const MINUTE: LimitKind = LimitKind::Rate { window_secs: 60 };

pub async fn an_identity_counts_once_for_all_its_keys(limiter: Shared, _clock: &FixedClock) {
    let customer = keygate_limits::IdentityLimits {
        rate_limits: vec![window(3, 60)],
        token_limit: tokens(100, ResetPeriod::Daily),
        ..identity("idn_once")
    };
    let a = under(
        &customer,
        Admission {
            credit_balance: Some(dollars("10")),
            ..with_windows("key_once_a", &[window(10, 60)])
        },
    );
    let b = Admission {
        subject: subject("key_once_b").with_identity(Some("idn_once")),
        ..a.clone()
    };
    for req in [&a, &b, &a] {
        assert!(limiter.admit(req).await.unwrap().is_admitted());
    }
    let decision = refused_without_trace(
        &limiter,
        &b,
        &[&a],
        Denial::RateLimited,
        LimitScope::Identity,
    )
    .await;
    // All three were admitted at this instant: the first leaves the identity's window in 60 s.
    assert_eq!(decision.retry_after_secs, Some(60));
    // The key's states, then the identity's, then the workspace's.
    let order: Vec<(LimitKind, LimitScope, i64)> = decision
        .limits
        .iter()
        .map(|l| (l.kind, l.scope, l.used))
        .collect();
    assert_eq!(
        order,
        vec![
            (MINUTE, LimitScope::Key, 1),
            (MINUTE, LimitScope::Identity, 3),
            (LimitKind::Tokens, LimitScope::Identity, 0),
            (LimitKind::Credits, LimitScope::Workspace, 0),
        ]
    );
    let json = serde_json::to_value(&decision).expect("json");
    assert_eq!(json["denied_by"], "identity");
    assert_eq!(json["limits"][1]["scope"], "identity");

    // The identity's tokens too are one budget for both keys.
    let spend = |req: &Admission, tokens: u64| Admission {
        rate_limits: Vec::new(),
        identity: Some(keygate_limits::IdentityLimits {
            rate_limits: Vec::new(),
            ..customer.clone()
        }),
        tokens,
        ..req.clone()
    };
    assert!(limiter.admit(&spend(&a, 60)).await.unwrap().is_admitted());
    let refused = refused_without_trace(
        &limiter,
        &spend(&b, 41),
        &[&spend(&a, 0)],
        Denial::TokenLimitReached,
        LimitScope::Identity,
    )
    .await;
    assert_eq!(refused.retry_after_secs, Some(12 * 3600));
    let admitted = limiter.admit(&spend(&b, 40)).await.unwrap();
    assert!(admitted.is_admitted());
    let used = scoped(&admitted.limits, LimitKind::Tokens, LimitScope::Identity);
    assert_eq!((used.used, used.remaining), (100, 0));
}

pub async fn a_tighter_key_limit_denies_without_touching_the_identity(
    limiter: Shared,
    clock: &FixedClock,
) {
    let customer = keygate_limits::IdentityLimits {
        rate_limits: vec![window(10, 60)],
        token_limit: tokens(1000, ResetPeriod::Daily),
        cost_limit: cost("10", ResetPeriod::Monthly),
        daily_spend_cap: Some(dollars("10")),
        ..identity("idn_loose")
    };
    let req = under(
        &customer,
        Admission {
            token_limit: tokens(100, ResetPeriod::Daily),
            cost_limit: cost("1.00", ResetPeriod::Weekly),
            daily_spend_cap: Some(dollars("0.50")),
            credit_balance: Some(dollars("100")),
            tokens: 60,
            cost: dollars("0.30"),
            ..with_windows("key_tight", &[window(1, 60)])
        },
    );
    // Another key of the identity sees the identity's counters.
    let sibling = Admission {
        subject: subject("key_tight_sibling").with_identity(Some("idn_loose")),
        rate_limits: Vec::new(),
        ..req.clone()
    };
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    let refused = refused_without_trace(
        &limiter,
        &req,
        &[&sibling],
        Denial::RateLimited,
        LimitScope::Key,
    )
    .await;
    assert_eq!(refused.retry_after_secs, Some(60));
    let identity_window = scoped(&refused.limits, MINUTE, LimitScope::Identity);
    assert_eq!(identity_window.used, 1);

    clock.advance_millis(60_000);
    refused_without_trace(
        &limiter,
        &req,
        &[&sibling],
        Denial::TokenLimitReached,
        LimitScope::Key,
    )
    .await;
    let cost_only = Admission {
        tokens: 40,
        cost: dollars("0.80"),
        ..req.clone()
    };
    let refused = refused_without_trace(
        &limiter,
        &cost_only,
        &[&sibling],
        Denial::CostLimitReached,
        LimitScope::Key,
    )
    .await;
    // Weekly: Wednesday 12:01 to Monday 00:00.
    assert_eq!(refused.retry_after_secs, Some(4 * 86_400 + 12 * 3600 - 60));
    let cap_only = Admission {
        cost: dollars("0.21"),
        ..cost_only
    };
    refused_without_trace(
        &limiter,
        &cap_only,
        &[&sibling],
        Denial::SpendCapReached,
        LimitScope::Key,
    )
    .await;
    let status = limiter.status(&sibling).await.unwrap();
    let identity_tokens = scoped(&status, LimitKind::Tokens, LimitScope::Identity);
    assert_eq!(identity_tokens.used, 60);
    let identity_cost = scoped(&status, LimitKind::Cost, LimitScope::Identity);
    assert_eq!(identity_cost.used, 300_000);
    assert_eq!(state_of(&status, LimitKind::Credits).used, 300_000);
    assert_eq!(
        state_of(&status, LimitKind::Tokens).used,
        0,
        "the sibling's own"
    );
}

pub async fn an_identity_limit_denies_without_touching_the_key(
    limiter: Shared,
    clock: &FixedClock,
) {
    let customer = keygate_limits::IdentityLimits {
        rate_limits: vec![window(1, 60)],
        token_limit: tokens(100, ResetPeriod::Monthly),
        cost_limit: cost("1.00", ResetPeriod::Weekly),
        daily_spend_cap: Some(dollars("0.50")),
        ..identity("idn_tight")
    };
    let req = under(
        &customer,
        Admission {
            token_limit: tokens(1000, ResetPeriod::Daily),
            cost_limit: cost("10", ResetPeriod::Daily),
            daily_spend_cap: Some(dollars("10")),
            credit_balance: Some(dollars("100")),
            tokens: 60,
            cost: dollars("0.30"),
            ..with_windows("key_loose", &[window(10, 60)])
        },
    );
    let sibling = Admission {
        subject: subject("key_loose_sibling").with_identity(Some("idn_tight")),
        ..req.clone()
    };
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    let refused = refused_without_trace(
        &limiter,
        &sibling,
        &[&req],
        Denial::RateLimited,
        LimitScope::Identity,
    )
    .await;
    assert_eq!(refused.retry_after_secs, Some(60));
    let key_window = scoped(&refused.limits, MINUTE, LimitScope::Key);
    assert_eq!(key_window.used, 0, "the refused key's window is untouched");

    clock.advance_millis(60_000);
    let refused = refused_without_trace(
        &limiter,
        &sibling,
        &[&req],
        Denial::TokenLimitReached,
        LimitScope::Identity,
    )
    .await;
    // The identity's monthly reset, not the key's daily one: 2026-12-01 00:00.
    assert_eq!(refused.retry_after_secs, Some(5 * 86_400 + 12 * 3600 - 60));
    let cost_only = Admission {
        tokens: 40,
        cost: dollars("0.80"),
        ..sibling.clone()
    };
    let refused = refused_without_trace(
        &limiter,
        &cost_only,
        &[&req],
        Denial::CostLimitReached,
        LimitScope::Identity,
    )
    .await;
    assert_eq!(refused.retry_after_secs, Some(4 * 86_400 + 12 * 3600 - 60));
    let cap_only = Admission {
        cost: dollars("0.21"),
        ..cost_only.clone()
    };
    let refused = refused_without_trace(
        &limiter,
        &cap_only,
        &[&req],
        Denial::SpendCapReached,
        LimitScope::Identity,
    )
    .await;
    assert_eq!(refused.retry_after_secs, Some(12 * 3600 - 60));
    let status = limiter.status(&sibling).await.unwrap();
    assert_eq!(state_of(&status, MINUTE).used, 0);
    assert_eq!(state_of(&status, LimitKind::Tokens).used, 0);
    assert_eq!(state_of(&status, LimitKind::Cost).used, 0);
    assert_eq!(state_of(&status, LimitKind::Credits).used, 300_000);

    // Within every limit, the sibling is admitted and counted on both scopes.
    let fits = Admission {
        cost: dollars("0.20"),
        ..cost_only
    };
    let admitted = limiter.admit(&fits).await.unwrap();
    assert!(admitted.is_admitted(), "{admitted:?}");
    assert_eq!(state_of(&admitted.limits, LimitKind::Tokens).used, 40);
    assert_eq!(
        scoped(&admitted.limits, LimitKind::Tokens, LimitScope::Identity).used,
        100
    );
    assert_eq!(
        scoped(
            &admitted.limits,
            LimitKind::DailySpendCap,
            LimitScope::Identity
        )
        .used,
        500_000
    );
}

pub async fn a_credit_denial_consumes_neither_key_nor_identity(
    limiter: Shared,
    _clock: &FixedClock,
) {
    let customer = keygate_limits::IdentityLimits {
        rate_limits: vec![window(10, 60)],
        token_limit: tokens(1000, ResetPeriod::Daily),
        cost_limit: cost("10", ResetPeriod::Daily),
        daily_spend_cap: Some(dollars("10")),
        ..identity("idn_broke")
    };
    let req = under(
        &customer,
        Admission {
            token_limit: tokens(1000, ResetPeriod::Daily),
            cost_limit: cost("10", ResetPeriod::Daily),
            credit_balance: Some(dollars("1.00")),
            tokens: 10,
            cost: dollars("0.60"),
            ..with_windows("key_broke", &[window(10, 60)])
        },
    );
    assert!(limiter.admit(&req).await.unwrap().is_admitted());
    let refused = refused_without_trace(
        &limiter,
        &req,
        &[],
        Denial::InsufficientCredits,
        LimitScope::Workspace,
    )
    .await;
    assert_eq!(refused.retry_after_secs, None);
    let refused = limiter
        .reserve(&req, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(refused.denied_by, Some(LimitScope::Workspace));
    assert_eq!(refused.reservation_id, None);
    let used: Vec<i64> = limiter
        .status(&req)
        .await
        .unwrap()
        .iter()
        .map(|l| l.used)
        .collect();
    // Key: window, tokens, cost; identity: window, tokens, cost, cap; credits.
    assert_eq!(used, vec![1, 10, 600_000, 1, 10, 600_000, 600_000, 600_000]);
}

/// Several scopes would refuse: the first in the order of the crate docs answers.
pub async fn scopes_are_checked_in_order(limiter: Shared, _clock: &FixedClock) {
    let owner = subject("key_order").with_identity(Some("idn_order"));
    let base = Admission {
        subject: owner.clone(),
        identity: Some(identity("idn_order")),
        ..Admission::new(owner.clone())
    };
    // Fill a 10 s window of the key and a 60 s window of the identity, and use up $1 and
    // 1000 tokens on both.
    let windows = Admission {
        rate_limits: vec![window(1, 10)],
        identity: Some(keygate_limits::IdentityLimits {
            rate_limits: vec![window(1, 60)],
            ..identity("idn_order")
        }),
        ..base.clone()
    };
    assert!(limiter.admit(&windows).await.unwrap().is_admitted());
    limiter.record(&owner, 1000, dollars("1.00")).await.unwrap();

    let every = keygate_limits::IdentityLimits {
        rate_limits: vec![window(1, 60)],
        token_limit: tokens(1000, ResetPeriod::Monthly),
        cost_limit: cost("1.00", ResetPeriod::Never),
        daily_spend_cap: Some(dollars("1.00")),
        ..identity("idn_order")
    };
    let all = Admission {
        rate_limits: vec![window(1, 10)],
        token_limit: tokens(1000, ResetPeriod::Daily),
        cost_limit: cost("1.00", ResetPeriod::Weekly),
        daily_spend_cap: Some(dollars("1.00")),
        identity: Some(every.clone()),
        credit_balance: Some(dollars("1.00")),
        ..base.clone()
    };
    let day = 86_400;
    let cases: Vec<(Admission, Denial, LimitScope, Option<u64>)> = vec![
        // Both scopes' windows are full: the key answers, and the wait is the longer one.
        (all.clone(), Denial::RateLimited, LimitScope::Key, Some(60)),
        (
            Admission {
                rate_limits: Vec::new(),
                ..all.clone()
            },
            Denial::RateLimited,
            LimitScope::Identity,
            Some(60),
        ),
    ];
    let no_windows = |req: Admission| Admission {
        rate_limits: Vec::new(),
        identity: req
            .identity
            .clone()
            .map(|i| keygate_limits::IdentityLimits {
                rate_limits: Vec::new(),
                ..i
            }),
        ..req
    };
    let all = no_windows(all);
    let mut cases = cases;
    cases.extend([
        (
            all.clone(),
            Denial::TokenLimitReached,
            LimitScope::Key,
            Some(day / 2),
        ),
        (
            Admission {
                token_limit: None,
                ..all.clone()
            },
            Denial::CostLimitReached,
            LimitScope::Key,
            Some(4 * day + day / 2),
        ),
        (
            Admission {
                token_limit: None,
                cost_limit: None,
                ..all.clone()
            },
            Denial::SpendCapReached,
            LimitScope::Key,
            Some(day / 2),
        ),
    ]);
    let identity_only = Admission {
        token_limit: None,
        cost_limit: None,
        daily_spend_cap: None,
        ..all.clone()
    };
    let with_identity = |token: bool, cost: bool| Admission {
        identity: Some(keygate_limits::IdentityLimits {
            rate_limits: Vec::new(),
            token_limit: if token { every.token_limit } else { None },
            cost_limit: if cost { every.cost_limit } else { None },
            ..every.clone()
        }),
        ..identity_only.clone()
    };
    cases.extend([
        (
            with_identity(true, true),
            Denial::TokenLimitReached,
            LimitScope::Identity,
            Some(5 * day + day / 2),
        ),
        (
            with_identity(false, true),
            Denial::CostLimitReached,
            LimitScope::Identity,
            None,
        ),
        (
            with_identity(false, false),
            Denial::SpendCapReached,
            LimitScope::Identity,
            Some(day / 2),
        ),
        (
            Admission {
                identity: Some(identity("idn_order")),
                ..identity_only
            },
            Denial::InsufficientCredits,
            LimitScope::Workspace,
            None,
        ),
    ]);
    for (req, denial, scope, retry) in cases {
        let refused = refused_without_trace(&limiter, &req, &[], denial, scope).await;
        assert_eq!(refused.retry_after_secs, retry, "{denial:?} {scope:?}");
    }
}

/// Windows of one length, one the key's and one the identity's, count apart: each its own
/// requests.
pub async fn key_and_identity_windows_are_separate_logs(limiter: Shared, _clock: &FixedClock) {
    let customer = keygate_limits::IdentityLimits {
        rate_limits: vec![window(3, 60)],
        ..identity("idn_logs")
    };
    let a = under(&customer, with_windows("key_logs_a", &[window(2, 60)]));
    let b = under(&customer, with_windows("key_logs_b", &[window(2, 60)]));
    assert!(limiter.admit(&a).await.unwrap().is_admitted());
    assert!(limiter.admit(&a).await.unwrap().is_admitted());
    let refused = limiter.admit(&a).await.unwrap();
    assert_eq!(refused.denied_by, Some(LimitScope::Key));
    let admitted = limiter.admit(&b).await.unwrap();
    assert!(admitted.is_admitted());
    assert_eq!(scoped(&admitted.limits, MINUTE, LimitScope::Key).used, 1);
    assert_eq!(
        scoped(&admitted.limits, MINUTE, LimitScope::Identity).used,
        3
    );
    let refused = limiter.admit(&b).await.unwrap();
    assert_eq!(refused.denied_by, Some(LimitScope::Identity));
    assert_eq!(scoped(&refused.limits, MINUTE, LimitScope::Key).used, 1);
}

pub async fn a_reservation_settles_on_the_identity_it_was_made_under(
    limiter: Shared,
    clock: &FixedClock,
) {
    let ttl = Duration::from_secs(60);
    let budget = |id: &str| keygate_limits::IdentityLimits {
        token_limit: tokens(1000, ResetPeriod::Monthly),
        cost_limit: cost("1.00", ResetPeriod::Monthly),
        ..identity(id)
    };
    let req = under(
        &budget("idn_made"),
        Admission {
            credit_balance: Some(dollars("10")),
            tokens: 100,
            cost: dollars("0.10"),
            ..admission("key_moved")
        },
    );
    // Status of each identity, through keys that spend nothing.
    let made = under(&budget("idn_made"), admission("key_probe_made"));
    let other = under(&budget("idn_other"), admission("key_probe_other"));
    let identity_used = |limits: &[keygate_limits::LimitState]| {
        (
            scoped(limits, LimitKind::Tokens, LimitScope::Identity).used,
            scoped(limits, LimitKind::Cost, LimitScope::Identity).used,
        )
    };

    let id = reserved(&limiter, &req, ttl).await;
    assert_eq!(
        identity_used(&limiter.status(&made).await.unwrap()),
        (100, 100_000),
        "the hold counts on the identity"
    );
    // Another key of the same identity does not own it.
    let sibling = Subject::new("ws_test", "key_probe_made").with_identity(Some("idn_made"));
    assert!(!limiter.settle(&sibling, &id, 1, Micros(1)).await.unwrap());
    assert!(!limiter.release(&sibling, &id).await.unwrap());
    // The key moved to another identity meanwhile: the one it was made under is charged.
    let moved = Subject::new("ws_test", "key_moved").with_identity(Some("idn_other"));
    assert!(limiter
        .settle(&moved, &id, 300, dollars("0.30"))
        .await
        .unwrap());
    assert_eq!(
        identity_used(&limiter.status(&made).await.unwrap()),
        (300, 300_000)
    );
    assert_eq!(
        identity_used(&limiter.status(&other).await.unwrap()),
        (0, 0)
    );
    let status = limiter.status(&req).await.unwrap();
    assert_eq!(state_of(&status, LimitKind::Credits).used, 300_000);

    // Released by a caller naming no identity: the hold is freed where it was made.
    let id = reserved(&limiter, &req, ttl).await;
    let no_identity = Subject::new("ws_test", "key_moved");
    assert!(limiter.release(&no_identity, &id).await.unwrap());
    assert_eq!(
        identity_used(&limiter.status(&made).await.unwrap()),
        (300, 300_000)
    );

    // A hold made without an identity is settled without one, whatever the caller names.
    let plain = Admission {
        subject: no_identity.clone(),
        identity: None,
        ..req.clone()
    };
    let id = reserved(&limiter, &plain, ttl).await;
    assert!(limiter.settle(&moved, &id, 5, Micros(5)).await.unwrap());
    assert_eq!(
        identity_used(&limiter.status(&other).await.unwrap()),
        (0, 0)
    );
    assert_eq!(
        identity_used(&limiter.status(&made).await.unwrap()),
        (300, 300_000)
    );

    // An expired hold leaves the identity by itself.
    let id = reserved(&limiter, &req, ttl).await;
    assert_eq!(
        identity_used(&limiter.status(&made).await.unwrap()),
        (400, 400_000)
    );
    clock.advance_millis(60_000);
    assert_eq!(
        identity_used(&limiter.status(&made).await.unwrap()),
        (300, 300_000)
    );
    assert!(!limiter
        .settle(&req.subject, &id, 1, Micros(1))
        .await
        .unwrap());
}

pub async fn record_charges_the_identity(limiter: Shared, _clock: &FixedClock) {
    let customer = keygate_limits::IdentityLimits {
        token_limit: tokens(1000, ResetPeriod::Weekly),
        cost_limit: cost("1.00", ResetPeriod::Never),
        daily_spend_cap: Some(dollars("5")),
        ..identity("idn_record")
    };
    let a = under(&customer, admission("key_record_a"));
    let b = under(&customer, admission("key_record_b"));
    limiter
        .record(&a.subject, 1500, dollars("0.40"))
        .await
        .unwrap();
    // Without an identity in the subject, only the key (and the workspace) are charged.
    limiter
        .record(&subject("key_record_a"), 7, dollars("0.07"))
        .await
        .unwrap();
    let refused = limiter.admit(&b).await.unwrap();
    assert_eq!(refused.denial, Some(Denial::TokenLimitReached));
    assert_eq!(refused.denied_by, Some(LimitScope::Identity));
    assert_eq!(refused.retry_after_secs, Some(4 * 86_400 + 12 * 3600));
    let used = |kind| scoped(&refused.limits, kind, LimitScope::Identity).used;
    assert_eq!(used(LimitKind::Tokens), 1500);
    assert_eq!(used(LimitKind::Cost), 400_000);
    assert_eq!(used(LimitKind::DailySpendCap), 400_000);
    let a_status = limiter
        .status(&Admission {
            token_limit: tokens(10_000, ResetPeriod::Daily),
            credit_balance: Some(dollars("10")),
            ..a
        })
        .await
        .unwrap();
    assert_eq!(state_of(&a_status, LimitKind::Tokens).used, 1507);
    assert_eq!(
        scoped(&a_status, LimitKind::Tokens, LimitScope::Identity).used,
        1500
    );
    assert_eq!(state_of(&a_status, LimitKind::Credits).used, 470_000);
}

/// A request made under an identity counts on it even when the admission carries none of
/// its limits, like a key's usage counts whatever its limits: limits added later see it.
pub async fn an_identity_without_limits_still_counts_its_usage(
    limiter: Shared,
    _clock: &FixedClock,
) {
    let owner = subject("key_unlimited").with_identity(Some("idn_unlimited"));
    let spend = Admission {
        tokens: 25,
        cost: dollars("0.25"),
        ..Admission::new(owner.clone())
    };
    assert!(limiter.admit(&spend).await.unwrap().is_admitted());
    let id = reserved(&limiter, &spend, Duration::from_secs(60)).await;
    let limited = under(
        &keygate_limits::IdentityLimits {
            token_limit: tokens(100, ResetPeriod::Daily),
            ..identity("idn_unlimited")
        },
        admission("key_unlimited_probe"),
    );
    let status = limiter.status(&limited).await.unwrap();
    assert_eq!(
        scoped(&status, LimitKind::Tokens, LimitScope::Identity).used,
        50
    );
    assert!(limiter.settle(&owner, &id, 10, Micros(0)).await.unwrap());
    let status = limiter.status(&limited).await.unwrap();
    assert_eq!(
        scoped(&status, LimitKind::Tokens, LimitScope::Identity).used,
        35
    );
}
