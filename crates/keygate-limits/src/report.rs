//! Turning counted usage into a [`Decision`]: shared by both backends so that the same history
//! produces the same numbers, Retry-After and reset times whichever store counted it.

use chrono::{DateTime, TimeZone, Utc};
use keygate_core::limits::ResetPeriod;
use keygate_core::Denial;

use crate::{
    as_i64, budget_limit, window_ms, Admission, Decision, LimitKind, LimitScope, LimitState,
    MAX_AMOUNT,
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

/// Every limit's consumption after the decision, holds included. Budgets the admission does
/// not carry are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    pub windows: Vec<WindowUsage>,
    /// In the token limit's current period.
    pub tokens: i64,
    /// In the cost limit's current period.
    pub cost: i64,
    /// Cost today (UTC), for the daily spend cap.
    pub daily: i64,
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

pub(crate) fn limit_states(req: &Admission, now: DateTime<Utc>, usage: &Usage) -> Vec<LimitState> {
    let mut states = Vec::with_capacity(req.rate_limits.len() + 4);
    for (window, used) in req.rate_limits.iter().zip(&usage.windows) {
        states.push(state(
            LimitKind::Rate {
                window_secs: window.window.secs(),
            },
            LimitScope::Key,
            as_i64(window.limit),
            as_i64(used.count),
            used.mark_ms
                .and_then(|ms| millis_to_time(ms.saturating_add(window_ms(window)))),
        ));
    }
    if let Some(limit) = req.token_limit {
        states.push(state(
            LimitKind::Tokens,
            LimitScope::Key,
            as_i64(limit.limit),
            usage.tokens,
            limit.reset.next_reset(now),
        ));
    }
    if let Some(limit) = req.cost_limit {
        states.push(state(
            LimitKind::Cost,
            LimitScope::Key,
            budget_limit(limit.limit.0),
            usage.cost,
            limit.reset.next_reset(now),
        ));
    }
    if let Some(cap) = req.daily_spend_cap {
        states.push(state(
            LimitKind::DailySpendCap,
            LimitScope::Key,
            budget_limit(cap.0),
            usage.daily,
            ResetPeriod::Daily.next_reset(now),
        ));
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

/// Assembles the answer once a backend has decided. `rate_retry_ms` is the longest wait among
/// the full rate windows (`None` if a window's limit is zero and waiting cannot help).
pub(crate) fn decision(
    req: &Admission,
    now: DateTime<Utc>,
    denial: Option<Denial>,
    rate_retry_ms: Option<i64>,
    usage: &Usage,
    reservation_id: Option<String>,
) -> Decision {
    let retry_after_secs = match denial {
        None => None,
        Some(Denial::RateLimited) => rate_retry_ms.map(ceil_secs),
        Some(Denial::TokenLimitReached) => {
            secs_until(now, req.token_limit.and_then(|l| l.reset.next_reset(now)))
        }
        Some(Denial::CostLimitReached) => {
            secs_until(now, req.cost_limit.and_then(|l| l.reset.next_reset(now)))
        }
        Some(Denial::SpendCapReached) => secs_until(now, ResetPeriod::Daily.next_reset(now)),
        Some(_) => None,
    };
    let denied_by = denial.map(|d| match d {
        Denial::InsufficientCredits => LimitScope::Workspace,
        _ => LimitScope::Key,
    });
    Decision {
        denial,
        denied_by,
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
