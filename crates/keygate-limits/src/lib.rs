//! Keygate's limiters: where every request-rate window, token and cost budget, daily spend cap
//! and workspace credit balance is counted.
//!
//! The server asks one question per request, [`Limiter::admit`] (or [`Limiter::reserve`] when
//! the cost is only known after the upstream answers), and gets back a [`Decision`]. Two
//! backends answer it: [`MemoryLimiter`] for a single node and [`RedisLimiter`] when several
//! nodes must share counters.
//!
//! The design decisions a reader must know:
//!
//! * **Check-then-consume is one atomic step.** Every limit of a request is checked in the
//!   PRODUCT.md order and, only if all pass, every one is consumed, under one lock (memory) or
//!   inside one Lua script (Redis, one round trip). A denial consumes nothing. Splitting the
//!   check from the consumption would let concurrent requests all see "one left" and overspend.
//! * **Rate windows are exact, not approximated.** A rolling window keeps the timestamp of every
//!   admitted request still inside it (a deque in memory, a sorted set in Redis), so "60 per
//!   minute" holds over *any* 60-second interval. Memory per key and window is bounded by the
//!   window's limit because a request is only logged when it is admitted; the price is
//!   `O(limit)` memory for windows with huge limits (1M/day costs ~8 MB per key in memory).
//! * **Budgets are counted for every reset period at once.** A key's tokens and cost are added
//!   to a daily, a weekly, a monthly and a lifetime counter, keyed by the period's UTC start.
//!   So [`Limiter::record`], which knows only the key, can count usage without knowing the key's
//!   limits, a key whose reset period changes keeps its true usage, and the daily spend cap is
//!   simply the daily cost counter.
//! * **Reservations are holds with a deadline.** A reserved amount counts as used until it is
//!   settled, released, or its deadline passes; expired holds are swept lazily by whichever
//!   request next touches the same key or workspace, so a caller that crashed mid-request
//!   frees its hold after the ttl without any background task. A hold always counts against
//!   the *current* period (conservative), and settling charges the actual amount to the
//!   period in which it is settled.
//! * **Failure refuses.** If the store cannot be reached the limiter returns
//!   [`LimiterError::Unavailable`] within a bounded time; it never admits silently.
//! * **Money is integer micro-dollars.** `LimitState` reports money limits in micros too.

mod memory;
pub mod redis;
mod report;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keygate_core::limits::{CostLimit, RateWindow, ResetPeriod, TokenLimit};
use keygate_core::{Denial, Micros};
use serde::Serialize;

pub use crate::memory::MemoryLimiter;
pub use crate::redis::RedisLimiter;

/// Counts and enforces every limit of a key and its workspace.
#[async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// Checks every limit in the PRODUCT.md order (rate windows → token/cost limit → daily
    /// spend cap → workspace credits) and, only if all pass, consumes atomically: one request
    /// on every rate window, plus `tokens`/`cost` on the budgets. A denial consumes nothing.
    async fn admit(&self, req: &Admission) -> Result<Decision, LimiterError>;

    /// Like [`Limiter::admit`], but `tokens`/`cost` are held rather than spent, until
    /// [`Limiter::settle`], [`Limiter::release`] or `ttl` passes; the request itself counts on
    /// the rate windows at once. The id is in [`Decision::reservation_id`].
    async fn reserve(&self, req: &Admission, ttl: Duration) -> Result<Decision, LimiterError>;

    /// Replaces a hold by the actual amounts (lower or higher than reserved). Idempotent: only
    /// the first call counts; an unknown, settled, released or expired id gives `Ok(false)`,
    /// and the caller may then [`Limiter::record`] the usage instead.
    async fn settle(
        &self,
        reservation_id: &str,
        actual_tokens: u64,
        actual_cost: Micros,
    ) -> Result<bool, LimiterError>;

    /// Drops a hold without spending anything.
    async fn release(&self, reservation_id: &str) -> Result<bool, LimiterError>;

    /// Adds usage after the fact, unconditionally: it can take a budget over its limit, after
    /// which admissions are refused until the period resets.
    async fn record(
        &self,
        subject: &Subject,
        tokens: u64,
        cost: Micros,
    ) -> Result<(), LimiterError>;

    /// Current consumption of every limit in `req`, consuming nothing.
    async fn status(&self, req: &Admission) -> Result<Vec<LimitState>, LimiterError>;

    /// Forgets a deleted key's counters (best effort; holds on the workspace expire on their own).
    async fn forget_key(&self, key_id: &str) -> Result<(), LimiterError>;
}

/// Whose limits are counted: a key, inside the workspace whose credits it spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub workspace_id: String,
    pub key_id: String,
}

impl Subject {
    pub fn new(workspace_id: impl Into<String>, key_id: impl Into<String>) -> Self {
        Self {
            workspace_id: workspace_id.into(),
            key_id: key_id.into(),
        }
    }
}

/// Everything the limiter needs to decide one request; the server fills it from the key, its
/// workspace and any named policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub subject: Subject,
    /// The effective windows: the key's own or the workspace default, plus any named-policy
    /// windows (which can only tighten, since every window is checked).
    pub rate_limits: Vec<RateWindow>,
    pub token_limit: Option<TokenLimit>,
    pub cost_limit: Option<CostLimit>,
    /// Resets at 00:00 UTC.
    pub daily_spend_cap: Option<Micros>,
    /// Total credit granted to the workspace; what remains is this minus what the workspace
    /// has spent, which the limiter counts.
    pub credit_balance: Option<Micros>,
    /// Tokens to consume with the check (0 for a plain verify).
    pub tokens: u64,
    /// Cost to consume with the check.
    pub cost: Micros,
}

impl Admission {
    /// An admission with no limits and nothing to consume; set the fields that apply.
    pub fn new(subject: Subject) -> Self {
        Self {
            subject,
            rate_limits: Vec::new(),
            token_limit: None,
            cost_limit: None,
            daily_spend_cap: None,
            credit_balance: None,
            tokens: 0,
            cost: Micros::ZERO,
        }
    }

    /// Whether any budget (as opposed to a rate window) is involved, so the fast path can skip
    /// the calendar arithmetic.
    fn touches_budgets(&self) -> bool {
        self.tokens > 0
            || self.cost.0 > 0
            || self.token_limit.is_some()
            || self.cost_limit.is_some()
            || self.daily_spend_cap.is_some()
            || self.credit_balance.is_some()
    }
}

/// The limiter's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `None` means admitted.
    pub denial: Option<Denial>,
    /// Whole seconds, rounded up so a client that waits this long is never early: for a rate
    /// window the time until enough counted requests leave it, for a budget the time to its
    /// next reset (`None` for a budget that never resets, and for credits).
    pub retry_after_secs: Option<u64>,
    /// Every limit, with what remains after this decision.
    pub limits: Vec<LimitState>,
    /// Set by [`Limiter::reserve`] when admitted.
    pub reservation_id: Option<String>,
}

impl Decision {
    pub fn is_admitted(&self) -> bool {
        self.denial.is_none()
    }
}

/// Which limit a [`LimitState`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LimitKind {
    Rate { window_secs: u64 },
    Tokens,
    Cost,
    DailySpendCap,
    Credits,
}

impl LimitKind {
    /// What `limit`, `used` and `remaining` count, so a client never mistakes micro-dollars
    /// for dollars.
    pub fn unit(self) -> &'static str {
        match self {
            LimitKind::Rate { .. } => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::Cost | LimitKind::DailySpendCap | LimitKind::Credits => "usd_micros",
        }
    }
}

/// Consumption of one limit. Money kinds (`cost`, `daily_spend_cap`, `credits`) are in
/// micro-dollars (serialized with `"unit":"usd_micros"`); reserved amounts count as used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    pub kind: LimitKind,
    pub limit: i64,
    pub used: i64,
    /// `limit - used`, never below zero.
    pub remaining: i64,
    /// When `remaining` next grows: the oldest relevant request leaving a rate window, or the
    /// budget's reset. `None` when nothing is counted yet or the budget never resets.
    pub reset_at: Option<DateTime<Utc>>,
}

impl Serialize for LimitState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        let kind = match self.kind {
            LimitKind::Rate { .. } => "rate",
            LimitKind::Tokens => "tokens",
            LimitKind::Cost => "cost",
            LimitKind::DailySpendCap => "daily_spend_cap",
            LimitKind::Credits => "credits",
        };
        map.serialize_entry("kind", kind)?;
        if let LimitKind::Rate { window_secs } = self.kind {
            map.serialize_entry("window_secs", &window_secs)?;
        }
        map.serialize_entry("unit", self.kind.unit())?;
        map.serialize_entry("limit", &self.limit)?;
        map.serialize_entry("used", &self.used)?;
        map.serialize_entry("remaining", &self.remaining)?;
        map.serialize_entry("reset_at", &self.reset_at)?;
        map.end()
    }
}

/// A failure of the limiter itself, as opposed to a denial (which is data in [`Decision`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimiterError {
    /// The shared store cannot be reached or did not answer in time. The server must refuse
    /// the request (`limiter_unavailable`), never let it through unlimited.
    #[error("the limiter's store is unavailable: {0}")]
    Unavailable(String),
    /// The store answered something this version does not understand.
    #[error("the limiter's store answered unexpectedly: {0}")]
    Protocol(String),
}

/// The periods every budget is counted in, in the order the backends store them.
pub(crate) const PERIODS: [ResetPeriod; 4] = [
    ResetPeriod::Daily,
    ResetPeriod::Weekly,
    ResetPeriod::Monthly,
    ResetPeriod::Never,
];

pub(crate) fn period_index(period: ResetPeriod) -> usize {
    match period {
        ResetPeriod::Daily => 0,
        ResetPeriod::Weekly => 1,
        ResetPeriod::Monthly => 2,
        ResetPeriod::Never => 3,
    }
}

/// Amounts are `u64` tokens or `i64` micros from the outside; counters are `i64` and saturate.
pub(crate) fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A budget refuses when the request would take it over the limit, and also when it is already
/// used up, so a zero-cost request against an exhausted budget is refused too.
pub(crate) fn budget_refuses(used: i64, requested: i64, limit: i64) -> bool {
    used >= limit || used.checked_add(requested).is_none_or(|sum| sum > limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_states_serialize_flat_in_snake_case() {
        let state = LimitState {
            kind: LimitKind::Rate { window_secs: 60 },
            limit: 60,
            used: 1,
            remaining: 59,
            reset_at: None,
        };
        assert_eq!(
            serde_json::to_string(&state).expect("json"),
            r#"{"kind":"rate","window_secs":60,"unit":"requests","limit":60,"used":1,"remaining":59,"reset_at":null}"#
        );
        let cap = LimitState {
            kind: LimitKind::DailySpendCap,
            ..state
        };
        assert!(serde_json::to_string(&cap)
            .expect("json")
            .starts_with(r#"{"kind":"daily_spend_cap","unit":"usd_micros","limit""#));
    }

    #[test]
    fn budgets_refuse_at_and_over_the_limit() {
        assert!(!budget_refuses(0, 10, 10));
        assert!(budget_refuses(1, 10, 10));
        assert!(budget_refuses(10, 0, 10));
        assert!(budget_refuses(0, 0, 0));
        assert!(budget_refuses(i64::MAX - 1, i64::MAX, i64::MAX));
    }
}
