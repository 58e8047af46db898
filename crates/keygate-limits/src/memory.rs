//! The in-process limiter, for a single node.
//!
//! State lives in sharded maps behind plain `std::sync::Mutex`es: a decision is a few hundred
//! nanoseconds of arithmetic, far shorter than any await, so a blocking lock held for that long
//! is cheaper than an async one, and sharding keeps unrelated keys from contending. An
//! identity's counters are a [`KeyState`] too, in shards of their own keyed by identity id, so
//! all of its keys count on one entry. A decision locks at most one key shard, then one
//! identity shard, then one workspace shard, always in that order (and settling and recording
//! too), so two decisions cannot deadlock; holding all of them at once is what makes checking
//! the three scopes and consuming on all of them one atomic step. Idle entries, keys' and
//! identities' alike, are dropped when a shard doubles in size, which keeps memory
//! proportional to the keys and identities actually in use.
//!
//! A reservation is registered under its random id together with its [`Subject`] and the
//! identity it was made under; settling or releasing checks that the caller owns it (same
//! workspace and key) before touching anything, then ends the holds where they were made.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keygate_core::limits::RateWindow;
use keygate_core::{Clock, Denial, Micros};

use crate::report::{self, mark_index, ScopeUsage, Usage, WindowUsage};
use crate::{
    add_amount, as_i64, bucket_end, budget_limit, budget_refuses, granularity_ms, money,
    new_reservation_nonce, parse_reservation_id, period_index, reservation_id_text, window_ms,
    Admission, Decision, LimitScope, LimitState, Limiter, LimiterError, ScopeLimits, Subject,
    MAX_AMOUNT, MAX_SPAN_MS, PERIODS,
};

const SHARDS: usize = 64;
/// A shard is swept for idle entries when it reaches this size, then at twice what survives.
const MIN_SWEEP_AT: usize = 4096;

/// Counts limits in this process. Cheap to share: wrap it in an `Arc`.
pub struct MemoryLimiter {
    clock: Arc<dyn Clock>,
    hasher: RandomState,
    keys: Box<[Mutex<Shard<String, KeyState>>]>,
    /// Identities' counters, the same shape as a key's.
    identities: Box<[Mutex<Shard<String, KeyState>>]>,
    workspaces: Box<[Mutex<Shard<String, WorkspaceState>>]>,
    reservations: Box<[Mutex<Shard<u128, ReservationRef>>]>,
}

struct Shard<K, V> {
    map: HashMap<K, V>,
    sweep_at: usize,
}

impl<K, V> Default for Shard<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            sweep_at: MIN_SWEEP_AT,
        }
    }
}

impl<K: std::hash::Hash + Eq, V> Shard<K, V> {
    /// Whether the map has doubled since the last sweep, so that sweeping is amortised O(1).
    fn needs_sweep(&self) -> bool {
        self.map.len() >= self.sweep_at
    }

    /// Drops entries that no longer hold anything.
    fn sweep(&mut self, mut is_idle: impl FnMut(&mut V) -> bool) {
        self.map.retain(|_, v| !is_idle(v));
        self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP_AT);
    }
}

/// Everything counted for one key, or for one identity (for all of its keys).
#[derive(Default)]
struct KeyState {
    windows: Vec<WindowLog>,
    /// Tokens per period kind (see `PERIODS`).
    tokens: [Counter; 4],
    /// Cost per period kind; the daily one is also the daily spend cap's counter.
    cost: [Counter; 4],
    holds: Holds,
}

impl KeyState {
    fn window(&mut self, millis: i64) -> &mut WindowLog {
        let at = match self.windows.iter().position(|w| w.millis == millis) {
            Some(at) => at,
            None => {
                self.windows.push(WindowLog {
                    millis,
                    count: 0,
                    entries: VecDeque::new(),
                });
                self.windows.len() - 1
            }
        };
        &mut self.windows[at]
    }

    fn add_usage(&mut self, starts: &[i64; 4], tokens: i64, cost: i64) {
        for (i, start) in starts.iter().enumerate() {
            if tokens != 0 {
                self.tokens[i].add(*start, tokens);
            }
            if cost != 0 {
                self.cost[i].add(*start, cost);
            }
        }
    }

    /// Prunes the logs of `windows` and folds the wait of each full one into `retry` (the
    /// longest so far; `None` once a full window's limit is zero). Returns whether any is full.
    fn check_windows(&mut self, windows: &[RateWindow], now: i64, retry: &mut Option<i64>) -> bool {
        let mut full = false;
        for window in windows {
            let log = self.window(window_ms(window));
            log.prune(now);
            let count = log.count;
            if count >= window.limit {
                full = true;
                let oldest = log.stamp_at(mark_index(count, window.limit));
                // A zero limit never admits, so there is no time worth waiting for.
                *retry = match (*retry, oldest) {
                    (Some(longest), Some(t)) => {
                        Some(longest.max(t.saturating_add(log.millis).saturating_sub(now)))
                    }
                    _ => None,
                };
            }
        }
        full
    }

    /// Logs one request on every window of `windows`, once per length (windows of one length
    /// share a log).
    fn push_windows(&mut self, windows: &[RateWindow], now: i64) {
        for (i, window) in windows.iter().enumerate() {
            let counted_already = windows[..i].iter().any(|w| w.window == window.window);
            if !counted_already {
                let granularity = granularity_ms(windows, window);
                self.window(window_ms(window)).push(now, granularity);
            }
        }
    }

    /// What the budgets of `limits` have used in their current periods, holds included.
    fn budget_use(&self, limits: &ScopeLimits<'_>, starts: &[i64; 4]) -> BudgetUse {
        let (held_tokens, held_cost) = (self.holds.tokens, self.holds.cost);
        BudgetUse {
            tokens: limits.token_limit.map_or(0, |l| {
                let i = period_index(l.reset);
                self.tokens[i].get(starts[i]).saturating_add(held_tokens)
            }),
            cost: limits.cost_limit.map_or(0, |l| {
                let i = period_index(l.reset);
                self.cost[i].get(starts[i]).saturating_add(held_cost)
            }),
            daily: self.cost[0].get(starts[0]).saturating_add(held_cost),
        }
    }

    /// The scope's consumption for the report: `used` plus what the decision consumed.
    fn scope_usage(
        &mut self,
        windows: &[RateWindow],
        used: BudgetUse,
        (tokens, cost): (i64, i64),
    ) -> ScopeUsage {
        ScopeUsage {
            windows: windows
                .iter()
                .map(|w| self.window(window_ms(w)).usage(w.limit))
                .collect(),
            tokens: used.tokens.saturating_add(tokens),
            cost: used.cost.saturating_add(cost),
            daily: used.daily.saturating_add(cost),
        }
    }

    fn is_idle(&mut self, now: i64, starts: &[i64; 4]) -> bool {
        self.holds.sweep(now);
        self.windows.iter_mut().all(|w| {
            w.prune(now);
            w.entries.is_empty()
        }) && self.holds.map.is_empty()
            && self
                .tokens
                .iter()
                .chain(&self.cost)
                .zip(starts.iter().chain(starts))
                .all(|(c, start)| c.get(*start) == 0)
    }
}

/// One scope's budgets as a decision sees them, holds included: tokens and cost in the
/// periods of its limits, and cost today.
#[derive(Default, Clone, Copy)]
struct BudgetUse {
    tokens: i64,
    cost: i64,
    daily: i64,
}

impl BudgetUse {
    /// The first of the scope's budgets that refuses `tokens` and `cost`, in the order token
    /// limit, cost limit, daily spend cap.
    fn refusal(&self, limits: &ScopeLimits<'_>, tokens: i64, cost: i64) -> Option<Denial> {
        if limits
            .token_limit
            .is_some_and(|l| budget_refuses(self.tokens, tokens, as_i64(l.limit)))
        {
            Some(Denial::TokenLimitReached)
        } else if limits
            .cost_limit
            .is_some_and(|l| budget_refuses(self.cost, cost, budget_limit(l.limit.0)))
        {
            Some(Denial::CostLimitReached)
        } else if limits
            .daily_spend_cap
            .is_some_and(|cap| budget_refuses(self.daily, cost, budget_limit(cap.0)))
        {
            Some(Denial::SpendCapReached)
        } else {
            None
        }
    }
}

/// The requests admitted in one rolling window: `(time ms, requests)` entries, oldest first,
/// times strictly increasing. An exact window logs each request at its own millisecond
/// (requests in the same millisecond share an entry); a bucketed one at the end of its bucket
/// (see the crate docs), so the entries stay few whatever the limit.
struct WindowLog {
    millis: i64,
    /// The sum of the entries' requests.
    count: u64,
    entries: VecDeque<(i64, u64)>,
}

impl WindowLog {
    /// A request logged at `t` is inside the window at `now` while `now - t < window`.
    fn prune(&mut self, now: i64) {
        let cutoff = now.saturating_sub(self.millis);
        while let Some(&(t, n)) = self.entries.front() {
            if t > cutoff {
                break;
            }
            self.count = self.count.saturating_sub(n);
            self.entries.pop_front();
        }
    }

    fn push(&mut self, now: i64, granularity: i64) {
        let stamp = bucket_end(now, granularity);
        self.count = self.count.saturating_add(1);
        match self.entries.back_mut() {
            // Same bucket, or a clock that stepped back: counting the request as later than
            // it was only keeps it in the window longer, which errs on the safe side and
            // keeps the log sorted.
            Some((last, n)) if *last >= stamp => *n = n.saturating_add(1),
            _ => self.entries.push_back((stamp, 1)),
        }
    }

    /// The time of the request at `index` (0 = oldest), counting each entry's requests.
    fn stamp_at(&self, index: u64) -> Option<i64> {
        let mut seen = 0_u64;
        self.entries.iter().find_map(|&(t, n)| {
            seen = seen.saturating_add(n);
            (seen > index).then_some(t)
        })
    }

    fn usage(&self, limit: u64) -> WindowUsage {
        WindowUsage {
            count: self.count,
            mark_ms: self.stamp_at(mark_index(self.count, limit)),
        }
    }
}

/// A counter for one period; it reads as zero once its period is over.
#[derive(Default, Clone, Copy)]
struct Counter {
    start_ms: i64,
    used: i64,
}

impl Counter {
    fn get(&self, start_ms: i64) -> i64 {
        if self.start_ms == start_ms {
            self.used
        } else {
            0
        }
    }

    fn add(&mut self, start_ms: i64, amount: i64) {
        if self.start_ms != start_ms {
            *self = Counter { start_ms, used: 0 };
        }
        self.used = add_amount(self.used, amount);
    }
}

/// Reserved amounts, each until its deadline. The totals are exact sums of the holds, kept at
/// most [`MAX_AMOUNT`] by clamping each new hold, so releasing never drifts or overflows.
struct Holds {
    map: HashMap<u128, Hold>,
    tokens: i64,
    cost: i64,
    /// The earliest deadline, so that a sweep with nothing to do costs one comparison.
    next_expiry: i64,
}

impl Default for Holds {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            tokens: 0,
            cost: 0,
            next_expiry: i64::MAX,
        }
    }
}

#[derive(Clone, Copy)]
struct Hold {
    tokens: i64,
    cost: i64,
    deadline: i64,
}

impl Holds {
    /// Releases every hold whose deadline has come (a hold is live while `now < deadline`).
    fn sweep(&mut self, now: i64) {
        if now < self.next_expiry {
            return;
        }
        let (mut tokens, mut cost, mut next) = (self.tokens, self.cost, i64::MAX);
        self.map.retain(|_, hold| {
            if hold.deadline <= now {
                tokens = tokens.saturating_sub(hold.tokens);
                cost = cost.saturating_sub(hold.cost);
                false
            } else {
                next = next.min(hold.deadline);
                true
            }
        });
        (self.tokens, self.cost, self.next_expiry) = (tokens, cost, next);
    }

    /// Holds at most what keeps the totals within [`MAX_AMOUNT`]: a hold that large already
    /// exhausts any limit, so the clamped part could never change a decision.
    fn add(&mut self, id: u128, hold: Hold) {
        let hold = Hold {
            tokens: hold
                .tokens
                .min(MAX_AMOUNT.saturating_sub(self.tokens))
                .max(0),
            cost: hold.cost.min(MAX_AMOUNT.saturating_sub(self.cost)).max(0),
            deadline: hold.deadline,
        };
        self.tokens = self.tokens.saturating_add(hold.tokens);
        self.cost = self.cost.saturating_add(hold.cost);
        self.next_expiry = self.next_expiry.min(hold.deadline);
        self.map.insert(id, hold);
    }

    fn remove(&mut self, id: u128) -> Option<Hold> {
        let hold = self.map.remove(&id)?;
        self.tokens = self.tokens.saturating_sub(hold.tokens);
        self.cost = self.cost.saturating_sub(hold.cost);
        Some(hold)
    }
}

#[derive(Default)]
struct WorkspaceState {
    spent: i64,
    holds: Holds,
}

impl WorkspaceState {
    fn used(&self) -> i64 {
        self.spent.saturating_add(self.holds.cost)
    }

    fn spend(&mut self, cost: i64) {
        self.spent = add_amount(self.spent, cost);
    }
}

/// Whose a reservation is: where its holds are, and who alone may settle or release it.
struct ReservationRef {
    /// Its owner (workspace and key; see [`Subject::owns`]).
    subject: Subject,
    /// The identity it was made under, which settling charges whatever the caller says.
    identity: Option<String>,
    deadline: i64,
}

#[derive(Clone, Copy)]
enum Mode {
    Status,
    Admit,
    Reserve { id: u128, deadline: i64 },
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock can at worst leave one decision half-counted; the
    // counters stay meaningful, so keep serving rather than poison every later request.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn period_starts(now: DateTime<Utc>) -> [i64; 4] {
    PERIODS.map(|p| p.period_start(now).timestamp_millis())
}

impl MemoryLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        fn shards<K, V>() -> Box<[Mutex<Shard<K, V>>]> {
            (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect()
        }
        Self {
            clock,
            hasher: RandomState::new(),
            keys: shards(),
            identities: shards(),
            workspaces: shards(),
            reservations: shards(),
        }
    }

    fn shard_of(&self, id: &str) -> usize {
        (self.hasher.hash_one(id) as usize) % SHARDS
    }

    fn key_shard(&self, key_id: &str) -> MutexGuard<'_, Shard<String, KeyState>> {
        lock(&self.keys[self.shard_of(key_id)])
    }

    fn identity_shard(&self, identity_id: &str) -> MutexGuard<'_, Shard<String, KeyState>> {
        lock(&self.identities[self.shard_of(identity_id)])
    }

    fn workspace_shard(&self, workspace_id: &str) -> MutexGuard<'_, Shard<String, WorkspaceState>> {
        lock(&self.workspaces[self.shard_of(workspace_id)])
    }

    /// Ids are random, so their low bits spread them evenly.
    fn reservation_shard(&self, id: u128) -> MutexGuard<'_, Shard<u128, ReservationRef>> {
        lock(&self.reservations[(id % SHARDS as u128) as usize])
    }

    /// The one function that checks, and consumes if everything passes. Locks the key's
    /// shard, then the identity's, then the workspace's, and holds them all until the
    /// decision is made and counted.
    fn decide(&self, req: &Admission, mode: Mode) -> Decision {
        let now_time = self.clock.now();
        let now = now_time.timestamp_millis();
        let starts = if req.touches_budgets() {
            period_starts(now_time)
        } else {
            [0; 4]
        };
        let consuming = !matches!(mode, Mode::Status);
        let tokens = as_i64(req.tokens);
        let cost = money(req.cost);
        let key_limits = req.key_limits();
        let identity_limits = req.identity_limits();
        let checks_identity = identity_limits.is_some();
        let identity_limits = identity_limits.unwrap_or(ScopeLimits::NONE);

        let mut key_shard = self.key_shard(&req.subject.key_id);
        if key_shard.needs_sweep() {
            let current = period_starts(now_time);
            key_shard.sweep(|k| k.is_idle(now, &current));
        }
        let key = key_shard.map.entry(req.subject.key_id.clone()).or_default();
        key.holds.sweep(now);

        // The identity is locked when its limits are checked or the request counts on it.
        let mut identity_shard = req
            .counted_identity()
            .filter(|_| checks_identity || consuming)
            .map(|id| (id, self.identity_shard(id)));
        let mut identity = identity_shard.as_mut().map(|(id, shard)| {
            if shard.needs_sweep() {
                let current = period_starts(now_time);
                shard.sweep(|k| k.is_idle(now, &current));
            }
            let state = shard.map.entry((*id).to_owned()).or_default();
            state.holds.sweep(now);
            state
        });

        // Every full window of both scopes is looked at, so the wait is the longest of all.
        let mut rate_retry: Option<i64> = Some(0);
        let key_full = key.check_windows(key_limits.rate_limits, now, &mut rate_retry);
        let identity_full = identity.as_deref_mut().is_some_and(|state| {
            state.check_windows(identity_limits.rate_limits, now, &mut rate_retry)
        });
        let key_used = key.budget_use(&key_limits, &starts);
        let identity_used = identity
            .as_deref()
            .map_or_else(BudgetUse::default, |state| {
                state.budget_use(&identity_limits, &starts)
            });
        let mut denial = if key_full {
            Some((Denial::RateLimited, LimitScope::Key))
        } else if identity_full {
            Some((Denial::RateLimited, LimitScope::Identity))
        } else {
            key_used
                .refusal(&key_limits, tokens, cost)
                .map(|d| (d, LimitScope::Key))
                .or_else(|| {
                    identity_used
                        .refusal(&identity_limits, tokens, cost)
                        .map(|d| (d, LimitScope::Identity))
                })
        };

        // The workspace is locked only when its credit is checked or spent, so the hot path
        // (a plain verify) touches one lock.
        let mut ws_shard = (req.credit_balance.is_some() || (consuming && cost > 0))
            .then(|| self.workspace_shard(&req.subject.workspace_id));
        let mut workspace = ws_shard.as_mut().map(|shard| {
            if shard.needs_sweep() {
                shard.sweep(|w| {
                    w.holds.sweep(now);
                    w.spent == 0 && w.holds.map.is_empty()
                });
            }
            let ws = shard
                .map
                .entry(req.subject.workspace_id.clone())
                .or_default();
            ws.holds.sweep(now);
            ws
        });
        let credits_used = workspace.as_ref().map_or(0, |w| w.used());
        if denial.is_none()
            && req
                .credit_balance
                .is_some_and(|balance| budget_refuses(credits_used, cost, budget_limit(balance.0)))
        {
            denial = Some((Denial::InsufficientCredits, LimitScope::Workspace));
        }

        let admitted = denial.is_none() && consuming;
        if admitted {
            key.push_windows(key_limits.rate_limits, now);
            if let Some(state) = identity.as_deref_mut() {
                state.push_windows(identity_limits.rate_limits, now);
            }
            match mode {
                Mode::Admit => {
                    key.add_usage(&starts, tokens, cost);
                    if let Some(state) = identity.as_deref_mut() {
                        state.add_usage(&starts, tokens, cost);
                    }
                    if let Some(ws) = workspace.as_mut() {
                        ws.spend(cost);
                    }
                }
                Mode::Reserve { id, deadline } => {
                    let hold = Hold {
                        tokens,
                        cost,
                        deadline,
                    };
                    key.holds.add(id, hold);
                    if let Some(state) = identity.as_deref_mut() {
                        state.holds.add(id, hold);
                    }
                    if let Some(ws) = workspace.as_mut() {
                        ws.holds.add(id, Hold { tokens: 0, ..hold });
                    }
                }
                Mode::Status => {}
            }
        }

        let consumed = if admitted { (tokens, cost) } else { (0, 0) };
        let usage = Usage {
            key: key.scope_usage(key_limits.rate_limits, key_used, consumed),
            identity: identity.map_or_else(ScopeUsage::default, |state| {
                state.scope_usage(identity_limits.rate_limits, identity_used, consumed)
            }),
            credits: credits_used.saturating_add(consumed.1),
        };
        drop(ws_shard);
        let reservation_identity = identity_shard.map(|(id, _)| id.to_owned());
        drop(key_shard);

        let reservation_id = match mode {
            Mode::Reserve { id, deadline } if admitted => {
                let mut shard = self.reservation_shard(id);
                if shard.needs_sweep() {
                    shard.sweep(|r| r.deadline <= now);
                }
                shard.map.insert(
                    id,
                    ReservationRef {
                        subject: req.subject.clone(),
                        identity: reservation_identity,
                        deadline,
                    },
                );
                Some(reservation_id_text(id))
            }
            _ => None,
        };
        report::decision(req, now_time, denial, rate_retry, &usage, reservation_id)
    }

    /// Settles (`actual` given) or releases a reservation, if `owner` owns it (its workspace
    /// and key; `owner.identity_id` plays no part). The holds are ended, and the actual
    /// amounts charged, where the reservation was made: its key, the identity it was made
    /// under, its workspace.
    fn finish(&self, owner: &Subject, reservation_id: &str, actual: Option<(u64, Micros)>) -> bool {
        let Some(id) = parse_reservation_id(reservation_id) else {
            return false;
        };
        let now_time = self.clock.now();
        let now = now_time.timestamp_millis();
        let reservation = match self.reservation_shard(id).map.entry(id) {
            Entry::Occupied(entry) if owner.owns(&entry.get().subject) => entry.remove(),
            // Unknown, or someone else's: the same answer, and someone else's hold stays.
            _ => return false,
        };
        if reservation.deadline <= now {
            return false;
        }
        let starts = period_starts(now_time);
        let (tokens, cost) = actual.map_or((0, 0), |(t, c)| (as_i64(t), money(c)));

        let mut key_shard = self.key_shard(&reservation.subject.key_id);
        let Some(key) = key_shard.map.get_mut(&reservation.subject.key_id) else {
            return false; // forgotten since
        };
        if key.holds.remove(id).is_none() {
            return false;
        }
        key.add_usage(&starts, tokens, cost);
        let mut identity_shard = reservation
            .identity
            .as_deref()
            .map(|id| (id, self.identity_shard(id)));
        if let Some((identity_id, shard)) = identity_shard.as_mut() {
            let identity = shard.map.entry((*identity_id).to_owned()).or_default();
            identity.holds.remove(id);
            identity.add_usage(&starts, tokens, cost);
        }
        let mut ws_shard = self.workspace_shard(&reservation.subject.workspace_id);
        let ws = ws_shard
            .map
            .entry(reservation.subject.workspace_id.clone())
            .or_default();
        ws.holds.remove(id);
        ws.spend(cost);
        true
    }
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn admit(&self, req: &Admission) -> Result<Decision, LimiterError> {
        Ok(self.decide(req, Mode::Admit))
    }

    async fn reserve(&self, req: &Admission, ttl: Duration) -> Result<Decision, LimiterError> {
        let id = new_reservation_nonce();
        let ttl_ms = i64::try_from(ttl.as_millis())
            .unwrap_or(i64::MAX)
            .clamp(1, MAX_SPAN_MS);
        let deadline = self.clock.now_millis().saturating_add(ttl_ms);
        Ok(self.decide(req, Mode::Reserve { id, deadline }))
    }

    async fn settle(
        &self,
        owner: &Subject,
        reservation_id: &str,
        actual_tokens: u64,
        actual_cost: Micros,
    ) -> Result<bool, LimiterError> {
        Ok(self.finish(owner, reservation_id, Some((actual_tokens, actual_cost))))
    }

    async fn release(&self, owner: &Subject, reservation_id: &str) -> Result<bool, LimiterError> {
        Ok(self.finish(owner, reservation_id, None))
    }

    async fn record(
        &self,
        subject: &Subject,
        tokens: u64,
        cost: Micros,
    ) -> Result<(), LimiterError> {
        let (tokens, cost) = (as_i64(tokens), money(cost));
        if tokens == 0 && cost == 0 {
            return Ok(());
        }
        let starts = period_starts(self.clock.now());
        let mut key_shard = self.key_shard(&subject.key_id);
        key_shard
            .map
            .entry(subject.key_id.clone())
            .or_default()
            .add_usage(&starts, tokens, cost);
        // Held until the workspace is counted too, in the order of every decision.
        let _identity_shard = subject.identity_id.as_deref().map(|id| {
            let mut shard = self.identity_shard(id);
            shard
                .map
                .entry(id.to_owned())
                .or_default()
                .add_usage(&starts, tokens, cost);
            shard
        });
        if cost > 0 {
            let mut ws_shard = self.workspace_shard(&subject.workspace_id);
            ws_shard
                .map
                .entry(subject.workspace_id.clone())
                .or_default()
                .spend(cost);
        }
        Ok(())
    }

    async fn status(&self, req: &Admission) -> Result<Vec<LimitState>, LimiterError> {
        Ok(self.decide(req, Mode::Status).limits)
    }

    async fn forget_key(&self, key_id: &str) -> Result<(), LimiterError> {
        self.key_shard(key_id).map.remove(key_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use keygate_core::limits::{RateWindow, WindowLength};
    use keygate_core::FixedClock;

    use super::*;

    fn keys_held(limiter: &MemoryLimiter) -> usize {
        limiter.keys.iter().map(|s| lock(s).map.len()).sum()
    }

    fn identities_held(limiter: &MemoryLimiter) -> usize {
        limiter.identities.iter().map(|s| lock(s).map.len()).sum()
    }

    fn log_entries(limiter: &MemoryLimiter, key_id: &str) -> Vec<usize> {
        let shard = limiter.key_shard(key_id);
        shard.map[key_id]
            .windows
            .iter()
            .map(|w| w.entries.len())
            .collect()
    }

    /// Issue #15: a 30-day window with a limit of ten million used to keep one timestamp per
    /// request; bucketed, it keeps at most 61 entries however many requests it counts.
    #[tokio::test]
    async fn security_bucketed_windows_keep_bounded_memory() {
        let clock = FixedClock::at_millis(1_790_000_000_000);
        let limiter = MemoryLimiter::new(Arc::new(clock.clone()));
        let busy = Admission {
            rate_limits: vec![RateWindow {
                limit: 10_000_000,
                window: WindowLength(30 * 86_400),
            }],
            ..Admission::new(Subject::new("ws", "key_busy"))
        };
        for _ in 0..20_000 {
            assert!(limiter.admit(&busy).await.expect("admit").is_admitted());
            clock.advance_millis(129_600); // 20,000 steps span 30 days
        }
        let entries = log_entries(&limiter, "key_busy");
        assert!(entries.iter().all(|n| (1..=61).contains(n)), "{entries:?}");

        // An exact window merges requests of the same millisecond.
        let burst = Admission {
            rate_limits: vec![RateWindow {
                limit: 1000,
                window: WindowLength(60),
            }],
            ..Admission::new(Subject::new("ws", "key_burst"))
        };
        for _ in 0..1000 {
            assert!(limiter.admit(&burst).await.expect("admit").is_admitted());
        }
        assert_eq!(log_entries(&limiter, "key_burst"), vec![1]);
    }

    #[tokio::test]
    async fn idle_keys_and_identities_are_dropped_when_a_shard_grows() {
        let clock = FixedClock::at_millis(1_790_000_000_000);
        let limiter = MemoryLimiter::new(Arc::new(clock.clone()));
        let window = RateWindow {
            limit: 5,
            window: WindowLength(1),
        };
        // Each key of its own identity, both with a one-second window.
        let request = |name: String| {
            let subject = Subject::new("ws", format!("key_{name}"))
                .with_identity(Some(format!("idn_{name}")));
            Admission {
                rate_limits: vec![window],
                identity: Some(crate::IdentityLimits {
                    identity_id: format!("idn_{name}"),
                    rate_limits: vec![window],
                    token_limit: None,
                    cost_limit: None,
                    daily_spend_cap: None,
                }),
                ..Admission::new(subject)
            }
        };
        let many = SHARDS * MIN_SWEEP_AT;
        for i in 0..many {
            limiter
                .admit(&request(format!("{i}")))
                .await
                .expect("admit");
        }
        assert!(keys_held(&limiter) > many / 2);
        assert!(identities_held(&limiter) > many / 2);
        // Once their one-second windows are empty, the next growth sweeps them away.
        clock.advance_millis(1000);
        for i in 0..many {
            limiter
                .admit(&request(format!("new_{i}")))
                .await
                .expect("admit");
        }
        for held in [keys_held(&limiter), identities_held(&limiter)] {
            assert!(held < many + many / 2, "{held}");
        }
    }
}
