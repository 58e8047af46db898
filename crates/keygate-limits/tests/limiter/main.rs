//! The limiter test suite, one binary: every conformance case runs against the in-process
//! limiter and against Redis. The Redis tests are `#[ignore]`d with `redis` in their path;
//! `scripts/test` runs them when Redis answers (see `backends::redis_url`).

mod backends;
mod concurrency;
mod conformance;
mod periods;
mod properties;
mod security;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use keygate_core::limits::{CostLimit, RateWindow, ResetPeriod, TokenLimit, WindowLength};
use keygate_core::{FixedClock, Micros};
use keygate_limits::{
    Admission, IdentityLimits, LimitKind, LimitScope, LimitState, Limiter, Subject,
};

pub type Shared = Arc<dyn Limiter>;

pub fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s)
        .single()
        .expect("valid time")
}

/// Wednesday 2026-11-25 12:00:00 UTC: far from every period boundary.
pub fn noon() -> FixedClock {
    FixedClock::at(at(2026, 11, 25, 12, 0, 0))
}

pub fn window(limit: u64, secs: u64) -> RateWindow {
    RateWindow {
        limit,
        window: WindowLength(secs),
    }
}

pub fn dollars(text: &str) -> Micros {
    Micros::parse_dollars(text).expect("amount")
}

pub fn subject(key: &str) -> Subject {
    Subject::new("ws_test", key)
}

pub fn admission(key: &str) -> Admission {
    Admission::new(subject(key))
}

pub fn with_windows(key: &str, windows: &[RateWindow]) -> Admission {
    Admission {
        rate_limits: windows.to_vec(),
        ..admission(key)
    }
}

pub fn tokens(limit: u64, reset: ResetPeriod) -> Option<TokenLimit> {
    Some(TokenLimit { limit, reset })
}

pub fn cost(limit: &str, reset: ResetPeriod) -> Option<CostLimit> {
    Some(CostLimit {
        limit: dollars(limit),
        reset,
    })
}

/// An identity with no limits yet; set the fields that apply.
pub fn identity(id: &str) -> IdentityLimits {
    IdentityLimits {
        identity_id: id.to_owned(),
        rate_limits: Vec::new(),
        token_limit: None,
        cost_limit: None,
        daily_spend_cap: None,
    }
}

/// `req` made by a key of `identity`: the identity's limits, and its id in the subject.
pub fn under(identity: &IdentityLimits, req: Admission) -> Admission {
    Admission {
        subject: req
            .subject
            .clone()
            .with_identity(Some(identity.identity_id.clone())),
        identity: Some(identity.clone()),
        ..req
    }
}

/// The state of `kind` in `scope`.
pub fn scoped(limits: &[LimitState], kind: LimitKind, scope: LimitScope) -> LimitState {
    limits
        .iter()
        .find(|l| l.kind == kind && l.scope == scope)
        .cloned()
        .unwrap_or_else(|| panic!("no {scope:?} {kind:?} in {limits:?}"))
}

pub fn state_of(limits: &[LimitState], kind: LimitKind) -> LimitState {
    limits
        .iter()
        .find(|l| l.kind == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind:?} in {limits:?}"))
}

/// Reserves `req` for `ttl` and returns the reservation's id; panics if it is refused.
pub async fn reserved(limiter: &Shared, req: &Admission, ttl: std::time::Duration) -> String {
    limiter
        .reserve(req, ttl)
        .await
        .unwrap()
        .reservation_id
        .expect("admitted")
}
