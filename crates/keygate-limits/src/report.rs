//! Turning counted usage into a [`Decision`]: shared by both backends so that the same history
//! produces the same numbers, Retry-After and reset times whichever store counted it.

use chrono::{DateTime, TimeZone, Utc};
use keygate_core::limits::ResetPeriod;
use keygate_core::Denial;

use crate::{
    as_i64, budget_limit, window_ms, Admission, Decision, LimitKind, LimitScope, LimitState,
    ScopeLimits, MAX_AMOUNT,
};

/// One rate window after the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowUsage {
    /// Requests counted in the window.
    pub count: u64,
    /// The logged time (ms) whose leaving the window next frees a slot for this window's limit:
    /// that of the request at index `count - limit` of the sorted log, or the oldest when not
    /// full. For a bucketed window it is the end of that request's bucket.
    pub mark_ms: Option<i64>,
}

/// One scope's consumption (a key's or an identity's) after the decision, holds included.
/// Budgets its limits do not carry are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ScopeUsage {
    /// One per rate window of the scope's limits, in their order.
    pub windows: Vec<WindowUsage>,
    /// In the token limit's current period.
    pub tokens: i64,
    /// In the cost limit's current period.
    pub cost: i64,
    /// Cost today (UTC), for the daily spend cap.
    pub daily: i64,
}

/// Every limit's consumption after the decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    pub key: ScopeUsage,
    /// Ignored when the admission carries no identity.
    pub identity: ScopeUsage,
    /// The workspace's credit spent.
    pub credits: i64,
}

/// Index into a window's sorted log of the request whose leaving frees a slot.
pub(crate) fn mark_index(count: u64, limit: u64) -> u64 {
    count.saturating_sub(limit)
}

pub(crate) fn millis_to_time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// Whole seconds, rounded up, so waiting this long is never early.
pub(crate) fn ceil_secs(ms: i64) -> u64 {
    let ms = ms.max(0) as u64;
    ms.div_ceil(1000)
}

fn secs_until(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> Option<u64> {
    at.map(|at| ceil_secs((at - now).num_milliseconds()))
}

/// `used` is clamped like every counter, so both backends report the same number even where
/// Redis's doubles could not add exactly.
fn state(
    kind: LimitKind,
    scope: LimitScope,
    limit: i64,
    used: i64,
    reset_at: Option<DateTime<Utc>>,
) -> LimitState {
    let used = used.clamp(0, MAX_AMOUNT);
    LimitState {
        kind,
        scope,
        limit,
        used,
        remaining: limit.saturating_sub(used).max(0),
        reset_at,
    }
}

fn scope_states(
    states: &mut Vec<LimitState>,
    limits: ScopeLimits<'_>,
    scope: LimitScope,
    now: DateTime<Utc>,
    usage: &ScopeUsage,
) {
    for (window, used) in limits.rate_limits.iter().zip(&usage.windows) {
        states.push(state(
            LimitKind::Rate {
                window_secs: window.window.secs(),
            },
            scope,
            as_i64(window.limit),
            as_i64(used.count),
            used.mark_ms
                .and_then(|ms| millis_to_time(ms.saturating_add(window_ms(window)))),
        ));
    }
    if let Some(limit) = limits.token_limit {
        states.push(state(
            LimitKind::Tokens,
            scope,
            as_i64(limit.limit),
            usage.tokens,
            limit.reset.next_reset(now),
        ));
    }
    if let Some(limit) = limits.cost_limit {
        states.push(state(
            LimitKind::Cost,
            scope,
            budget_limit(limit.limit.0),
            usage.cost,
            limit.reset.next_reset(now),
        ));
    }
    if let Some(cap) = limits.daily_spend_cap {
        states.push(state(
            LimitKind::DailySpendCap,
            scope,
            budget_limit(cap.0),
            usage.daily,
            ResetPeriod::Daily.next_reset(now),
        ));
    }
}

/// The key's states, then the identity's, then the workspace's credits.
pub(crate) fn limit_states(req: &Admission, now: DateTime<Utc>, usage: &Usage) -> Vec<LimitState> {
    let identity = req.identity_limits();
    let mut states = Vec::with_capacity(
        req.rate_limits.len() + identity.map_or(0, |l| l.rate_limits.len() + 3) + 4,
    );
    scope_states(
        &mut states,
        req.key_limits(),
        LimitScope::Key,
        now,
        &usage.key,
    );
    if let Some(limits) = identity {
        scope_states(
            &mut states,
            limits,
            LimitScope::Identity,
            now,
            &usage.identity,
        );
    }
    if let Some(balance) = req.credit_balance {
        states.push(state(
            LimitKind::Credits,
            LimitScope::Workspace,
            budget_limit(balance.0),
            usage.credits,
            None,
        ));
    }
    states
}

/// Assembles the answer once a backend has decided. `denial` comes with the scope that
/// refused; `rate_retry_ms` is the longest wait among the full rate windows of every scope
/// (`None` if a full window's limit is zero and waiting cannot help).
pub(crate) fn decision(
    req: &Admission,
    now: DateTime<Utc>,
    denial: Option<(Denial, LimitScope)>,
    rate_retry_ms: Option<i64>,
    usage: &Usage,
    reservation_id: Option<String>,
) -> Decision {
    let retry_after_secs = denial.and_then(|(denial, scope)| {
        let limits = req.limits_of(scope);
        match denial {
            Denial::RateLimited => rate_retry_ms.map(ceil_secs),
            Denial::TokenLimitReached => secs_until(
                now,
                limits
                    .and_then(|l| l.token_limit)
                    .and_then(|l| l.reset.next_reset(now)),
            ),
            Denial::CostLimitReached => secs_until(
                now,
                limits
                    .and_then(|l| l.cost_limit)
                    .and_then(|l| l.reset.next_reset(now)),
            ),
            Denial::SpendCapReached => secs_until(now, ResetPeriod::Daily.next_reset(now)),
            _ => None,
        }
    });
    Decision {
        denial: denial.map(|(denial, _)| denial),
        denied_by: denial.map(|(_, scope)| scope),
        retry_after_secs,
        limits: limit_states(req, now, usage),
        reservation_id: if denial.is_none() {
            reservation_id
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(0), 0);
        assert_eq!(ceil_secs(1), 1);
        assert_eq!(ceil_secs(1000), 1);
        assert_eq!(ceil_secs(1001), 2);
        assert_eq!(ceil_secs(-5), 0);
    }
}
