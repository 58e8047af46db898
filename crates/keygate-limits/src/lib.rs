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
//!   order of `docs/design.md` §3 and, only if all pass, every one is consumed, under one lock
//!   (memory) or inside one Lua script (Redis, one round trip). A denial consumes nothing.
//!   Splitting the check from the consumption would let concurrent requests all see "one
//!   left" and overspend.
//! * **Rate windows are exact up to a limit of 1,000, bucketed above.** A rolling window keeps
//!   a log of `(time, requests)` entries, oldest first (a deque in memory, a sorted set in
//!   Redis), so "60 per minute" holds over *any* 60-second interval. For a window whose limit
//!   is at most [`EXACT_WINDOW_LIMIT`] every request keeps its own millisecond, and the log has
//!   at most `limit` entries. Above that, a request's time is rounded *up* to the end of its
//!   bucket, one sixtieth of the window, so the log has at most 61 entries whatever the limit
//!   or the window's length: 16 bytes an entry in memory, about 100 in Redis. The accuracy:
//!   the limit still holds over every interval of the window's length (a request only ever
//!   counts *longer* than it should, never shorter), but a request keeps counting for up to
//!   one bucket after it left the window — at most 1 s of a 1-minute window, 24 min of a
//!   day, 12 h of 30 days — so a full window can go on refusing, and its Retry-After be, up
//!   to one bucket longer than an exact count would say. Windows of one length share one log, at the finest
//!   granularity any of them needs, so a key whose limit crosses 1,000 keeps its history.
//! * **An identity's limits are counted once for all of its keys, in the same atomic step.**
//!   An identity (a customer holding several keys) has the same kinds of limits as a key, and
//!   its counters sit beside its keys' (memory: shards of their own keyed by identity id;
//!   Redis: `i:<identity>:` under the workspace's hash tag). A request is checked against its
//!   key's limits, its identity's and its workspace's credits, and consumes on all of them
//!   only if every one passes, so a refusal by any scope leaves every scope untouched. The
//!   order, which is also the precedence of the answer: the key's rate windows, the
//!   identity's rate windows, the key's token limit, cost limit and daily spend cap, the
//!   identity's token limit, cost limit and daily spend cap, then the workspace's credits.
//!   [`Decision::denied_by`] names the scope that refused. A refusal by rate windows waits
//!   for the longest of *every* full window, the key's and the identity's alike (waiting for
//!   less would only be refused again); a budget's refusal waits for that budget's reset. The
//!   key's and the identity's windows are separate logs even when of one length.
//! * **Budgets are counted for every reset period at once.** A key's tokens and cost are added
//!   to a daily, a weekly, a monthly and a lifetime counter, keyed by the period's UTC start.
//!   So [`Limiter::record`], which knows only the key (and its identity), can count usage
//!   without knowing any limits, a key whose reset period changes keeps its true usage, and the
//!   daily spend cap is simply the daily cost counter. The same holds for an identity: usage is
//!   counted for the identity a request is made under even when the admission carries no
//!   limits of it.
//! * **Reservations are holds with a deadline.** A reserved amount counts as used until it is
//!   settled, released, or its deadline passes; expired holds are swept lazily by whichever
//!   request next touches the same key, identity or workspace, so a caller that crashed
//!   mid-request frees its hold after the ttl without any background task. A hold always counts against
//!   the *current* period (conservative), and settling charges the actual amount to the
//!   period in which it is settled. A hold counts against the identity's budgets too; the
//!   reservation remembers the identity it was made under, and settling charges (releasing
//!   frees) that identity, whatever identity the settling caller names.
//! * **A reservation belongs to its workspace and key.** Its id is `rsv_` and 128 bits from
//!   the OS CSPRNG (the same shape in both backends, so it cannot be guessed or counted), and
//!   [`Limiter::settle`] and [`Limiter::release`] take the [`Subject`] that must own it: an id
//!   of another workspace or key answers exactly like an unknown one and leaves the hold
//!   alone. The check is in the limiter so that no caller can forget it. The identity plays
//!   no part in it: another key of the same identity is a stranger to the reservation.
//! * **Counters saturate, never wrap.** Every amount, counter and limit is clamped to
//!   [`MAX_AMOUNT`] (2^53 − 1, the largest integer Lua's doubles hold exactly, so both backends
//!   agree to the unit): that is 9·10^15 tokens or $9 billion, and a counter that reaches it
//!   reads as exhausted rather than wrapping to a small or negative number.
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
    /// Checks every limit in the order of `docs/design.md` §3 (rate windows → token/cost
    /// limit → daily spend cap → workspace credits), the identity's after the key's at each
    /// step (see the crate docs), and, only if all pass, consumes atomically: one request on
    /// every rate window of the key and of the identity, plus `tokens`/`cost` on the budgets
    /// of both and on the workspace's credits. A denial consumes nothing anywhere.
    async fn admit(&self, req: &Admission) -> Result<Decision, LimiterError>;

    /// Like [`Limiter::admit`], but `tokens`/`cost` are held rather than spent, until
    /// [`Limiter::settle`], [`Limiter::release`] or `ttl` passes; the request itself counts on
    /// the rate windows at once. The id is in [`Decision::reservation_id`]: `rsv_` and 32
    /// lowercase hex digits (128 random bits), with no `.`, so a caller may wrap it in an id
    /// of its own. `ttl` is clamped to between 1 ms and ten years.
    async fn reserve(&self, req: &Admission, ttl: Duration) -> Result<Decision, LimiterError>;

    /// Replaces a hold by the actual amounts (lower or higher than reserved). `owner` must be
    /// the subject the reservation was made for: the id alone is not a capability, so a
    /// leaked or guessed id of another workspace or key is refused here, not only by the
    /// caller. Idempotent: only the first call counts; an unknown, foreign, settled, released
    /// or expired id gives `Ok(false)` (the same answer for all, so it reveals nothing), and
    /// the caller may then [`Limiter::record`] the usage instead.
    async fn settle(
        &self,
        owner: &Subject,
        reservation_id: &str,
        actual_tokens: u64,
        actual_cost: Micros,
    ) -> Result<bool, LimiterError>;

    /// Drops a hold without spending anything; `owner` is checked as for [`Limiter::settle`].
    async fn release(&self, owner: &Subject, reservation_id: &str) -> Result<bool, LimiterError>;

    /// Adds usage after the fact, unconditionally, to the key, to `subject.identity_id` when
    /// set, and to the workspace: it can take a budget over its limit, after which admissions
    /// are refused until the period resets.
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

/// Whose limits are counted: a key, inside the workspace whose credits it spends, and the
/// identity (customer) it belongs to, if any, whose budgets it also spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub workspace_id: String,
    pub key_id: String,
    /// Where [`Limiter::record`] also counts usage. A reservation remembers the identity it
    /// was made under and settles there, whatever the settling caller passes, so a key
    /// moved to another identity meanwhile cannot move a hold; ownership of a reservation
    /// is the workspace and key only (see [`Subject::owns`]).
    pub identity_id: Option<String>,
}

impl Subject {
    pub fn new(workspace_id: impl Into<String>, key_id: impl Into<String>) -> Self {
        Self {
            workspace_id: workspace_id.into(),
            key_id: key_id.into(),
            identity_id: None,
        }
    }

    /// The same subject, counting also for `identity_id`.
    pub fn with_identity(mut self, identity_id: Option<impl Into<String>>) -> Self {
        self.identity_id = identity_id.map(Into::into);
        self
    }

    /// Whether `self` may end a reservation made for `other`: same workspace and key.
    pub fn owns(&self, other: &Subject) -> bool {
        self.workspace_id == other.workspace_id && self.key_id == other.key_id
    }
}

/// The limits of the identity a key belongs to: the same kinds a key has, counted once for
/// all the identity's keys. Checked with the key's in the same atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityLimits {
    pub identity_id: String,
    pub rate_limits: Vec<RateWindow>,
    pub token_limit: Option<TokenLimit>,
    pub cost_limit: Option<CostLimit>,
    /// Resets at 00:00 UTC.
    pub daily_spend_cap: Option<Micros>,
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
    /// The key's identity and its limits, when the key belongs to one. Its id must equal
    /// `subject.identity_id`; if they differ, this one is where the request is counted (the
    /// limits checked are this one's). Without it, usage is still counted for
    /// `subject.identity_id`, with no identity limit checked.
    pub identity: Option<IdentityLimits>,
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
            identity: None,
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
            || self.key_limits().has_budgets()
            || self.identity_limits().is_some_and(|l| l.has_budgets())
            || self.credit_balance.is_some()
    }

    /// The key's own limits.
    pub(crate) fn key_limits(&self) -> ScopeLimits<'_> {
        ScopeLimits {
            rate_limits: &self.rate_limits,
            token_limit: self.token_limit,
            cost_limit: self.cost_limit,
            daily_spend_cap: self.daily_spend_cap,
        }
    }

    /// The identity's limits, when the admission carries an identity.
    pub(crate) fn identity_limits(&self) -> Option<ScopeLimits<'_>> {
        self.identity.as_ref().map(|identity| ScopeLimits {
            rate_limits: &identity.rate_limits,
            token_limit: identity.token_limit,
            cost_limit: identity.cost_limit,
            daily_spend_cap: identity.daily_spend_cap,
        })
    }

    /// The identity this request is counted for: that of [`Admission::identity`], whose limits
    /// are checked, else `subject.identity_id` (counted, nothing checked).
    pub(crate) fn counted_identity(&self) -> Option<&str> {
        self.identity
            .as_ref()
            .map(|identity| identity.identity_id.as_str())
            .or(self.subject.identity_id.as_deref())
    }

    /// The limits of `scope` (none for the workspace, whose credit is not a [`ScopeLimits`]).
    pub(crate) fn limits_of(&self, scope: LimitScope) -> Option<ScopeLimits<'_>> {
        match scope {
            LimitScope::Key => Some(self.key_limits()),
            LimitScope::Identity => self.identity_limits(),
            LimitScope::Workspace => None,
        }
    }
}

/// The limits of one scope, a key or an identity: both have the same kinds and are checked
/// the same way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScopeLimits<'a> {
    pub rate_limits: &'a [RateWindow],
    pub token_limit: Option<TokenLimit>,
    pub cost_limit: Option<CostLimit>,
    pub daily_spend_cap: Option<Micros>,
}

impl ScopeLimits<'_> {
    /// No limits: an identity counted without limits of its own.
    pub(crate) const NONE: ScopeLimits<'static> = ScopeLimits {
        rate_limits: &[],
        token_limit: None,
        cost_limit: None,
        daily_spend_cap: None,
    };

    fn has_budgets(&self) -> bool {
        self.token_limit.is_some() || self.cost_limit.is_some() || self.daily_spend_cap.is_some()
    }
}

/// The limiter's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `None` means admitted.
    pub denial: Option<Denial>,
    /// Whole seconds, rounded up so a client that waits this long is never early: for rate
    /// windows the time until enough counted requests leave every full one, the key's and the
    /// identity's alike (`None` if a full one has a zero limit), for a budget the time to the
    /// refusing budget's next reset (`None` for a budget that never resets, and for credits).
    pub retry_after_secs: Option<u64>,
    /// Every limit, with what remains after this decision: the key's, then the identity's,
    /// then the workspace's credits.
    pub limits: Vec<LimitState>,
    /// Whose limit refused, when one did: the key's, its identity's or the workspace's.
    pub denied_by: Option<LimitScope>,
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

/// Whose limit a [`LimitState`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    Key,
    Identity,
    Workspace,
}

/// Consumption of one limit. Money kinds (`cost`, `daily_spend_cap`, `credits`) are in
/// micro-dollars (serialized with `"unit":"usd_micros"`); reserved amounts count as used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    pub kind: LimitKind,
    pub scope: LimitScope,
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
        map.serialize_entry("scope", &self.scope)?;
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

/// The largest amount (tokens or micro-dollars) a counter, a hold or a limit holds: 2^53 − 1,
/// the largest integer a Lua double (Redis scripts) represents exactly. Both backends clamp to
/// it so they give the same answer for the same history, however extreme the input.
pub const MAX_AMOUNT: i64 = (1 << 53) - 1;

/// A rate window whose limit is at most this keeps an exact log; above it, 60 buckets.
pub const EXACT_WINDOW_LIMIT: u64 = 1000;

/// Buckets per window for windows with a limit above [`EXACT_WINDOW_LIMIT`].
const BUCKETS_PER_WINDOW: i64 = 60;

/// The longest window or hold counted (ten years; the API allows 31 days and 1 hour). Longer
/// ones are shortened to it, which keeps `now + span` far from overflowing an `i64` and
/// inside what Redis accepts as an expiry.
pub(crate) const MAX_SPAN_MS: i64 = 10 * 366 * 86_400_000;

const RESERVATION_PREFIX: &str = "rsv_";

/// Tokens as counted: `u64` from the outside, clamped to [`MAX_AMOUNT`].
pub(crate) fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX).min(MAX_AMOUNT)
}

/// Money as counted: negative amounts count as nothing, huge ones as [`MAX_AMOUNT`].
pub(crate) fn money(value: Micros) -> i64 {
    value.0.clamp(0, MAX_AMOUNT)
}

/// A budget's limit as compared. A negative limit admits nothing, like a zero one (and must
/// not reach Redis as `-1`, which the scripts read as "no limit").
pub(crate) fn budget_limit(limit: i64) -> i64 {
    limit.clamp(0, MAX_AMOUNT)
}

/// Adds to a counter, saturating at [`MAX_AMOUNT`].
pub(crate) fn add_amount(counter: i64, amount: i64) -> i64 {
    counter.saturating_add(amount).min(MAX_AMOUNT)
}

/// A window's length as counted, in ms (see [`MAX_SPAN_MS`]). From the seconds rather than
/// `WindowLength::millis`, which casts to `i64` first and turns `u64::MAX` s into −1000 ms.
pub(crate) fn window_ms(window: &RateWindow) -> i64 {
    i64::try_from(window.window.secs())
        .unwrap_or(i64::MAX)
        .saturating_mul(1000)
        .min(MAX_SPAN_MS)
}

/// How finely `window`'s log records time, in ms: 1 (exact) up to [`EXACT_WINDOW_LIMIT`],
/// else one sixtieth of the window. Windows of one length share a log, so this is the finest
/// granularity among all of `windows` with `window`'s length.
pub(crate) fn granularity_ms(windows: &[RateWindow], window: &RateWindow) -> i64 {
    let length = window_ms(window);
    windows
        .iter()
        .filter(|w| window_ms(w) == length)
        .map(|w| {
            if w.limit <= EXACT_WINDOW_LIMIT {
                1
            } else {
                (length / BUCKETS_PER_WINDOW + i64::from(length % BUCKETS_PER_WINDOW != 0)).max(1)
            }
        })
        .min()
        .unwrap_or(1)
}

/// The time a request at `now` is logged at: the last millisecond of its bucket, so that it
/// counts at least as long as it should, never shorter.
pub(crate) fn bucket_end(now: i64, granularity: i64) -> i64 {
    let g = granularity.max(1);
    now.saturating_sub(now.rem_euclid(g)).saturating_add(g - 1)
}

/// A new reservation's random part: 128 bits from the OS CSPRNG. The OS generator (not a
/// counter, not a user-space PRNG) because the id names money.
pub(crate) fn new_reservation_nonce() -> u128 {
    use rand::RngCore;
    let mut bytes = [0_u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    u128::from_be_bytes(bytes)
}

/// A reservation id as callers see it: `rsv_` + 32 lowercase hex digits.
pub(crate) fn reservation_id_text(nonce: u128) -> String {
    format!("{RESERVATION_PREFIX}{nonce:032x}")
}

/// The random part of an id made by [`reservation_id_text`]; `None` for anything else, so a
/// malformed id is simply unknown.
pub(crate) fn parse_reservation_id(id: &str) -> Option<u128> {
    let hex = id.strip_prefix(RESERVATION_PREFIX)?;
    if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u128::from_str_radix(hex, 16).ok()
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
            scope: LimitScope::Key,
            limit: 60,
            used: 1,
            remaining: 59,
            reset_at: None,
        };
        assert_eq!(
            serde_json::to_string(&state).expect("json"),
            r#"{"kind":"rate","scope":"key","window_secs":60,"unit":"requests","limit":60,"used":1,"remaining":59,"reset_at":null}"#
        );
        let cap = LimitState {
            kind: LimitKind::DailySpendCap,
            ..state
        };
        assert!(serde_json::to_string(&cap)
            .expect("json")
            .starts_with(r#"{"kind":"daily_spend_cap","scope":"key","unit":"usd_micros","limit""#));
    }

    #[test]
    fn budgets_refuse_at_and_over_the_limit() {
        assert!(!budget_refuses(0, 10, 10));
        assert!(budget_refuses(1, 10, 10));
        assert!(budget_refuses(10, 0, 10));
        assert!(budget_refuses(0, 0, 0));
        assert!(budget_refuses(i64::MAX - 1, i64::MAX, i64::MAX));
    }

    #[test]
    fn reservation_ids_round_trip_and_reject_everything_else() {
        let nonce = new_reservation_nonce();
        let id = reservation_id_text(nonce);
        assert_eq!(id.len(), 36);
        assert_eq!(parse_reservation_id(&id), Some(nonce));
        for bad in [
            "",
            "rsv_",
            "rsv_1",
            "nope",
            &id.to_uppercase(),
            &format!("{id}0"),
            &id[..35],
            "rsv_+0000000000000000000000000000000",
        ] {
            assert_eq!(parse_reservation_id(bad), None, "{bad}");
        }
        assert_ne!(new_reservation_nonce(), nonce);
    }

    #[test]
    fn long_or_busy_windows_are_bucketed() {
        let minute = |limit| RateWindow {
            limit,
            window: keygate_core::limits::WindowLength(60),
        };
        assert_eq!(granularity_ms(&[minute(1000)], &minute(1000)), 1);
        assert_eq!(granularity_ms(&[minute(1001)], &minute(1001)), 1000);
        // A 60 s window shared with an exact one is exact.
        assert_eq!(
            granularity_ms(&[minute(5000), minute(10)], &minute(5000)),
            1
        );
        let huge = RateWindow {
            limit: u64::MAX,
            window: keygate_core::limits::WindowLength(u64::MAX),
        };
        assert_eq!(window_ms(&huge), MAX_SPAN_MS);
        assert_eq!(granularity_ms(&[huge], &huge), MAX_SPAN_MS / 60);
        assert_eq!(bucket_end(1_000, 1), 1_000);
        assert_eq!(bucket_end(1_000, 60), 1_019);
        assert_eq!(bucket_end(1_019, 60), 1_019);
        assert_eq!(bucket_end(1_020, 60), 1_079);
        assert_eq!(bucket_end(i64::MAX, 7), i64::MAX);
    }
}
