//! Usage recording, off the request path: every verification and gateway request becomes a
//! [`UsageEvent`], handed to [`UsageRecorder::record`] (non-blocking), buffered and written
//! in batches by a background task.
//!
//! The one design decision: the request path only ever does a `try_send` on a bounded channel.
//! When the channel is full the event is dropped and counted
//! (`keygate_usage_events_dropped_total`) — verification never waits for the database. A
//! flusher drains the channel every `flush_interval` (1 s by default, sooner when the channel
//! is half full), sums the events into rollups (key × UTC day × operation × project ×
//! outcome), request-log rows and failed-authentication aggregates, and writes them in one
//! all-or-nothing store transaction; a failed write is kept and retried with the next flush,
//! so nothing is counted twice. A graceful shutdown stops the flusher between flushes and
//! flushes once more, so it loses nothing; a crash (kill -9, power cut) loses what was
//! buffered: at most one flush interval of events.
//!
//! Failed authentication attempts are not logged one row per attempt: they are counted per
//! workspace × hour × display form × source × code, and each node keeps at most
//! [`MAX_FAILURE_GROUPS_PER_HOUR`] distinct groups per workspace and hour (the rest are folded
//! into one "other" group), so a flood of invented keys from many addresses adds to counters
//! instead of filling the disk.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, NaiveDate, Utc};
use keygate_core::text::{Operation, ProjectRef, SourceIp};
use keygate_core::{ids, Clock, Denial, Micros};
use keygate_store::{AuthFailure, RequestLogEntry, Store, UsageBatch, UsageRollup};
use tokio::sync::{mpsc, Mutex, Notify};

/// One request made with a key (or an attempt that was refused).
#[derive(Debug, Clone)]
pub struct UsageEvent {
    pub request_id: String,
    pub workspace_id: String,
    /// `None` when no key was identified (missing, malformed, unknown).
    pub key_id: Option<String>,
    /// Display form of the presented key, for failed-authentication records; never the secret.
    pub key_display: Option<String>,
    pub at: DateTime<Utc>,
    /// The route (gateway) or the caller's `operation` (verify mode).
    pub operation: String,
    pub project: Option<String>,
    pub outcome: UsageOutcome,
    pub tokens: u64,
    pub cost: Micros,
    /// Where the request came from, when known.
    pub source_ip: Option<String>,
}

/// What became of a request, as its usage is counted. Stored and served as its code
/// ([`UsageOutcome::as_str`]): `valid`, the denial's code, or `reported`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageOutcome {
    /// The key was admitted.
    Valid,
    /// The key was refused.
    Denied(Denial),
    /// Usage reported after the fact (`POST /v1/usage`): its tokens and cost are counted, but
    /// it is not a request of its own (the verification before it was).
    Reported,
}

impl UsageOutcome {
    /// The stored and wire form; a denial's is its code (`keygate_core::Denial::code`).
    pub fn as_str(self) -> &'static str {
        match self {
            UsageOutcome::Valid => "valid",
            UsageOutcome::Denied(denial) => denial.code(),
            UsageOutcome::Reported => "reported",
        }
    }

    /// Reads a stored outcome back; `None` for a code this version does not know.
    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "valid" => Some(UsageOutcome::Valid),
            "reported" => Some(UsageOutcome::Reported),
            code => Denial::from_code(code).map(UsageOutcome::Denied),
        }
    }

    /// The denial, when the key did not authenticate (the 401s): those attempts are aggregated
    /// as failed ones instead of logged one by one.
    fn auth_failure(self) -> Option<Denial> {
        match self {
            UsageOutcome::Denied(denial) if denial.is_authentication_failure() => Some(denial),
            _ => None,
        }
    }
}

impl From<Option<Denial>> for UsageOutcome {
    /// A check's verdict: no denial is `Valid`.
    fn from(denial: Option<Denial>) -> Self {
        denial.map_or(UsageOutcome::Valid, UsageOutcome::Denied)
    }
}

/// The operation recorded when a verify-mode caller names none.
pub const DEFAULT_OPERATION: &str = "verify";

/// Longest accepted `operation`; operations are rollup keys, so they are kept short.
pub const MAX_OPERATION_CHARS: usize = Operation::MAX_CHARS;

/// Distinct failed-authentication groups one node writes per workspace and hour before it folds
/// further ones into a single "other" group.
pub const MAX_FAILURE_GROUPS_PER_HOUR: usize = 500;

/// How long failed-authentication aggregates are kept.
pub const AUTH_FAILURE_RETENTION_DAYS: i64 = 90;

/// Events summed between two yields when the flusher drains the buffer.
const DRAIN_SLICE: usize = 2048;

/// The display form the folded "other" failure group is recorded under.
const OTHER_DISPLAY: &str = "(other)";

/// How usage is recorded; part of the server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSettings {
    /// Off: `record` does nothing (for benchmarks, or nodes that must not write usage).
    pub enabled: bool,
    /// How long request-log rows are kept (rollups are kept for good).
    pub request_log_retention: Duration,
    /// How often buffered events are written; also what a crash can lose.
    pub flush_interval: Duration,
    /// Events buffered before new ones are dropped.
    pub buffer_capacity: usize,
}

impl Default for UsageSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            request_log_retention: Duration::from_secs(7 * 86_400),
            flush_interval: Duration::from_secs(1),
            buffer_capacity: 100_000,
        }
    }
}

/// What one request's usage is recorded with besides its key, outcome and amounts: built once
/// by the handler, used by `pipeline::check` and, for an AI request, by the settlement that
/// records it once its usage is known. Every [`UsageEvent`] is made by
/// [`UsageContext::event`], so verify mode and the gateway record the same way.
#[derive(Debug, Clone)]
pub struct UsageContext {
    pub request_id: String,
    /// The route (gateway) or the caller's `operation` (verify mode).
    pub operation: String,
    pub project: Option<String>,
    /// Where the request came from, when known.
    pub source_ip: Option<String>,
    /// Display form of the key as presented (`None` when none, or only blanks, was sent);
    /// never the secret.
    pub key_display: Option<String>,
}

impl UsageContext {
    /// The context of a request that presented `presented` (the raw key, if any).
    pub fn new(
        request_id: String,
        operation: String,
        project: Option<String>,
        source_ip: Option<String>,
        presented: Option<&str>,
    ) -> Self {
        Self {
            request_id,
            operation,
            project,
            source_ip,
            key_display: presented
                .filter(|k| !k.trim().is_empty())
                .map(keygate_core::key::display_form),
        }
    }

    /// The event for this request, made by `key_id` (`None`: no key was identified) of
    /// `workspace_id`, shown as the presented key's display form.
    pub fn event(
        &self,
        at: DateTime<Utc>,
        workspace_id: &str,
        key_id: Option<&str>,
        outcome: UsageOutcome,
        tokens: u64,
        cost: Micros,
    ) -> UsageEvent {
        UsageEvent {
            request_id: self.request_id.clone(),
            workspace_id: workspace_id.to_owned(),
            key_id: key_id.map(str::to_owned),
            key_display: self.key_display.clone(),
            at,
            operation: self.operation.clone(),
            project: self.project.clone(),
            outcome,
            tokens,
            cost,
            source_ip: self.source_ip.clone(),
        }
    }
}

/// The caller's `operation`, or [`DEFAULT_OPERATION`]; bounded (see
/// `keygate_core::text::Operation`), since operations are rollup keys.
pub fn valid_operation(operation: Option<String>) -> Result<String, crate::error::ApiError> {
    match operation {
        Some(operation) => Ok(Operation::parse(&operation)?.into_string()),
        None => Ok(DEFAULT_OPERATION.to_owned()),
    }
}

/// An end customer's address as the caller reports it; must be an IP address.
pub fn valid_source_ip(
    source_ip: Option<String>,
) -> Result<Option<String>, crate::error::ApiError> {
    Ok(source_ip
        .map(|ip| SourceIp::parse(&ip).map(SourceIp::into_string))
        .transpose()?)
}

/// The project a verify or reservation request names: a project id, never free text, since
/// it becomes a usage-rollup key.
pub fn valid_project(project: Option<&str>) -> Result<Option<&str>, crate::error::ApiError> {
    if let Some(project) = project {
        ProjectRef::parse(project)?;
    }
    Ok(project)
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
struct UsageStats {
    accepted: AtomicU64,
    dropped: AtomicU64,
    flushed: AtomicU64,
    flush_failures: AtomicU64,
    purged_requests: AtomicU64,
}

/// Takes usage events without blocking the request.
pub struct UsageRecorder {
    settings: UsageSettings,
    /// `None`: recording is off.
    sender: Option<mpsc::Sender<UsageEvent>>,
    /// Wakes the flusher early when the channel fills up.
    wake: Notify,
    /// Everything the flusher owns; a `tokio` mutex so a flush can hold it across the write.
    flush_side: Mutex<FlushSide>,
    store: Option<Arc<dyn Store>>,
    stats: UsageStats,
}

impl std::fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageRecorder")
            .field("settings", &self.settings)
            .field("depth", &self.depth())
            .finish_non_exhaustive()
    }
}

/// A recorder that records nothing; for states built without a store.
impl Default for UsageRecorder {
    fn default() -> Self {
        let settings = UsageSettings {
            enabled: false,
            ..UsageSettings::default()
        };
        Self::build(None, settings)
    }
}

impl UsageRecorder {
    /// A recorder writing to `store`; call [`UsageRecorder::spawn_flusher`] to start writing.
    pub fn new(store: Arc<dyn Store>, settings: UsageSettings) -> Self {
        Self::build(Some(store), settings)
    }

    fn build(store: Option<Arc<dyn Store>>, settings: UsageSettings) -> Self {
        let (sender, receiver) = if settings.enabled && store.is_some() {
            let (tx, rx) = mpsc::channel(settings.buffer_capacity.max(1));
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        Self {
            sender,
            wake: Notify::new(),
            flush_side: Mutex::new(FlushSide {
                receiver,
                pending: Pending::default(),
                failure_groups: HashMap::new(),
            }),
            store,
            stats: UsageStats::default(),
            settings,
        }
    }

    /// Queues an event; never blocks, never fails the request. A full buffer drops the event
    /// and counts it.
    pub fn record(&self, event: UsageEvent) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(event) {
            Ok(()) => {
                self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                if sender.capacity() < sender.max_capacity() / 2 {
                    self.wake.notify_one();
                }
            }
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events waiting in the buffer.
    pub fn depth(&self) -> usize {
        self.sender
            .as_ref()
            .map_or(0, |s| s.max_capacity() - s.capacity())
    }

    /// Writes everything buffered so far. On failure the batch is kept and retried with the
    /// next flush (the store writes a batch all or nothing).
    pub async fn flush(&self) {
        let Some(store) = &self.store else { return };
        let mut side = self.flush_side.lock().await;
        let FlushSide {
            receiver,
            pending,
            failure_groups,
        } = &mut *side;
        if let Some(receiver) = receiver {
            // What is buffered now, not what keeps arriving meanwhile; in slices with a yield
            // between them, so a big drain never holds up the requests on this worker thread.
            let mut left = self.depth();
            while left > 0 {
                let mut slice = DRAIN_SLICE.min(left);
                left -= slice;
                while slice > 0 {
                    let Ok(event) = receiver.try_recv() else {
                        left = 0;
                        break;
                    };
                    pending.add(event, failure_groups);
                    slice -= 1;
                }
                if left > 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
        if pending.events == 0 {
            return;
        }
        // The request-log entries move into the batch (they are the bulk) and come back if
        // the write fails.
        let mut batch = pending.to_batch();
        batch.requests = std::mem::take(&mut pending.requests);
        match store.record_usage(&batch).await {
            Ok(()) => {
                self.stats
                    .flushed
                    .fetch_add(pending.events, Ordering::Relaxed);
                *pending = Pending::default();
            }
            Err(e) => {
                self.stats.flush_failures.fetch_add(1, Ordering::Relaxed);
                pending.requests = batch.requests;
                tracing::warn!(error = %e, events = pending.events, "could not write usage; will retry");
                // Bounded while the store is down: past the buffer's size, request-log rows
                // are given up (counted as dropped); the rollups are small and kept.
                if pending.requests.len() > self.settings.buffer_capacity {
                    let lost = pending.requests.len() as u64;
                    pending.requests.clear();
                    self.stats.dropped.fetch_add(lost, Ordering::Relaxed);
                }
            }
        }
    }

    /// Flushes every `flush_interval` (or sooner when the buffer is half full) until stopped.
    pub fn spawn_flusher(self: &Arc<Self>) -> Flusher {
        let this = Arc::clone(self);
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.settings.flush_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = this.wake.notified() => {}
                    () = stopped.notified() => return,
                }
                // Not inside the select: a flush that started always finishes, so stopping
                // never abandons a batch half written.
                this.flush().await;
            }
        });
        Flusher { handle, stop }
    }

    /// Deletes request-log rows past their retention and old failed-authentication
    /// aggregates, every `every`, until the handle is aborted (a purge is idempotent).
    pub fn spawn_purger(
        self: &Arc<Self>,
        clock: Arc<dyn Clock>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let Some(store) = this.store.clone() else {
                return;
            };
            let retention = chrono::Duration::from_std(this.settings.request_log_retention)
                .unwrap_or(chrono::Duration::MAX);
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let now = clock.now();
                let before = now
                    .checked_sub_signed(retention)
                    .unwrap_or(DateTime::UNIX_EPOCH);
                match store.purge_request_log(before).await {
                    Ok(n) => {
                        this.stats.purged_requests.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!(error = %e, "could not purge the request log"),
                }
                let before = now - chrono::Duration::days(AUTH_FAILURE_RETENTION_DAYS);
                if let Err(e) = store.purge_auth_failures(before).await {
                    tracing::warn!(error = %e, "could not purge failed-authentication records");
                }
            }
        })
    }

    /// The recorder's series in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let counters = [
            (
                "keygate_usage_events_total",
                "Usage events accepted into the buffer.",
                &self.stats.accepted,
            ),
            (
                "keygate_usage_events_dropped_total",
                "Usage events dropped because the buffer was full (or the store was down too long).",
                &self.stats.dropped,
            ),
            (
                "keygate_usage_events_flushed_total",
                "Usage events written to the store.",
                &self.stats.flushed,
            ),
            (
                "keygate_usage_flush_failures_total",
                "Usage flushes that failed and were kept for retry.",
                &self.stats.flush_failures,
            ),
            (
                "keygate_request_log_purged_total",
                "Request-log rows deleted after their retention.",
                &self.stats.purged_requests,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
        }
        out.push_str("# HELP keygate_usage_buffer_depth Usage events waiting to be written.\n");
        out.push_str("# TYPE keygate_usage_buffer_depth gauge\n");
        let _ = writeln!(out, "keygate_usage_buffer_depth {}", self.depth());
    }
}

/// The running flusher; [`Flusher::stop`] ends it between two flushes.
pub struct Flusher {
    handle: tokio::task::JoinHandle<()>,
    stop: Arc<Notify>,
}

impl Flusher {
    /// Stops the loop after the flush in progress, if any, and waits for it.
    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.handle.await;
    }
}

struct FlushSide {
    receiver: Option<mpsc::Receiver<UsageEvent>>,
    pending: Pending,
    /// Failure groups seen per workspace and hour, to cap their number.
    failure_groups: HashMap<(String, DateTime<Utc>), HashSet<FailureKey>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RollupKey {
    workspace_id: String,
    key_id: String,
    day: NaiveDate,
    operation: String,
    project: Option<String>,
    outcome: UsageOutcome,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    requests: u64,
    tokens: u64,
    cost: Micros,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FailureKey {
    key_display: String,
    source_ip: Option<String>,
    code: Denial,
}

/// Events drained but not yet written, already summed.
#[derive(Default)]
struct Pending {
    events: u64,
    /// Rollups by the hash of their key's fields, so summing an event into an existing rollup
    /// hashes borrowed fields and copies nothing; the key is built only for a new rollup.
    rollups: HashMap<u64, Vec<(RollupKey, Counters)>, foldhash::fast::RandomState>,
    hasher: foldhash::fast::RandomState,
    requests: Vec<RequestLogEntry>,
    failures: HashMap<(String, DateTime<Utc>, FailureKey), AuthFailure>,
}

impl Pending {
    fn add(
        &mut self,
        event: UsageEvent,
        groups: &mut HashMap<(String, DateTime<Utc>), HashSet<FailureKey>>,
    ) {
        self.events += 1;
        if let Some(denial) = event.outcome.auth_failure() {
            if !event.workspace_id.is_empty() {
                self.add_failure(&event, denial, groups);
            }
        }
        let Some(key_id) = event.key_id else {
            // Unidentified attempts belong to no key: counted above, not logged one by one.
            return;
        };
        let day = event.at.date_naive();
        let hash = self.hasher.hash_one((
            event.workspace_id.as_str(),
            key_id.as_str(),
            day,
            event.operation.as_str(),
            event.project.as_deref(),
            event.outcome,
        ));
        let bucket = self.rollups.entry(hash).or_default();
        let found = bucket.iter().position(|(k, _)| {
            k.key_id == key_id
                && k.day == day
                && k.outcome == event.outcome
                && k.operation == event.operation
                && k.project == event.project
                && k.workspace_id == event.workspace_id
        });
        let index = found.unwrap_or_else(|| {
            bucket.push((
                RollupKey {
                    workspace_id: event.workspace_id.clone(),
                    key_id: key_id.clone(),
                    day,
                    operation: event.operation.clone(),
                    project: event.project.clone(),
                    outcome: event.outcome,
                },
                Counters::default(),
            ));
            bucket.len() - 1
        });
        let counters = &mut bucket[index].1;
        if event.outcome != UsageOutcome::Reported {
            counters.requests += 1;
        }
        counters.tokens = counters.tokens.saturating_add(event.tokens);
        counters.cost = counters.cost.saturating_add(event.cost);
        self.requests.push(RequestLogEntry {
            request_id: event.request_id,
            workspace_id: event.workspace_id,
            key_id,
            key_display: event.key_display,
            at: event.at,
            operation: event.operation,
            project: event.project,
            outcome: event.outcome.as_str().to_owned(),
            tokens: event.tokens,
            cost: event.cost,
            source_ip: event.source_ip,
        });
    }

    fn add_failure(
        &mut self,
        event: &UsageEvent,
        denial: Denial,
        groups: &mut HashMap<(String, DateTime<Utc>), HashSet<FailureKey>>,
    ) {
        let hour = event
            .at
            .duration_trunc(chrono::Duration::hours(1))
            .unwrap_or(event.at);
        // Forget the groups of hours that are over; only the current ones are capped.
        if groups.len() > 1 && !groups.contains_key(&(event.workspace_id.clone(), hour)) {
            groups.retain(|(_, h), _| *h >= hour - chrono::Duration::hours(1));
        }
        let mut key = FailureKey {
            key_display: event.key_display.clone().unwrap_or_default(),
            source_ip: event.source_ip.clone(),
            code: denial,
        };
        let seen = groups
            .entry((event.workspace_id.clone(), hour))
            .or_default();
        if !seen.contains(&key) {
            if seen.len() >= MAX_FAILURE_GROUPS_PER_HOUR {
                key.key_display = OTHER_DISPLAY.to_owned();
                key.source_ip = None;
            } else {
                seen.insert(key.clone());
            }
        }
        let failure = self
            .failures
            .entry((event.workspace_id.clone(), hour, key.clone()))
            .or_insert_with(|| AuthFailure {
                id: ids::new_id("af"),
                workspace_id: event.workspace_id.clone(),
                hour,
                key_display: key.key_display.clone(),
                source_ip: key.source_ip.clone(),
                code: key.code.code().to_owned(),
                attempts: 0,
                first_seen: event.at,
                last_seen: event.at,
            });
        failure.attempts += 1;
        failure.first_seen = failure.first_seen.min(event.at);
        failure.last_seen = failure.last_seen.max(event.at);
    }

    /// The rollups and failure aggregates as a batch; the caller moves the request-log
    /// entries in.
    fn to_batch(&self) -> UsageBatch {
        UsageBatch {
            rollups: self
                .rollups
                .values()
                .flatten()
                .map(|(k, c)| UsageRollup {
                    workspace_id: k.workspace_id.clone(),
                    key_id: k.key_id.clone(),
                    day: k.day,
                    operation: k.operation.clone(),
                    project: k.project.clone(),
                    outcome: k.outcome.as_str().to_owned(),
                    requests: c.requests,
                    tokens: c.tokens,
                    cost: c.cost,
                })
                .collect(),
            requests: Vec::new(),
            auth_failures: self.failures.values().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32, outcome: UsageOutcome, key: Option<&str>) -> UsageEvent {
        UsageEvent {
            request_id: format!("req_{n}"),
            workspace_id: "ws_1".into(),
            key_id: key.map(Into::into),
            key_display: Some(format!("kg_live_{n}…")),
            at: DateTime::from_timestamp(1_800_000_000 + i64::from(n), 0).unwrap_or_default(),
            operation: "verify".into(),
            project: None,
            outcome,
            tokens: 5,
            cost: Micros(10),
            source_ip: Some(format!("10.0.0.{}", n % 7)),
        }
    }

    #[test]
    fn events_are_summed_into_rollups_and_logged_once_each() {
        let mut pending = Pending::default();
        let mut groups = HashMap::new();
        for n in 0..3 {
            pending.add(event(n, UsageOutcome::Valid, Some("key_a")), &mut groups);
        }
        pending.add(event(3, UsageOutcome::Reported, Some("key_a")), &mut groups);
        let batch = pending.to_batch();
        assert_eq!(pending.requests.len(), 4);
        let valid = batch
            .rollups
            .iter()
            .find(|r| r.outcome == "valid")
            .expect("valid rollup");
        assert_eq!(
            (valid.requests, valid.tokens, valid.cost),
            (3, 15, Micros(30))
        );
        let reported = batch
            .rollups
            .iter()
            .find(|r| r.outcome == "reported")
            .expect("reported rollup");
        assert_eq!(reported.requests, 0, "reported usage is not a request");
        assert!(batch.auth_failures.is_empty());
    }

    #[test]
    fn outcomes_are_stored_as_their_codes_and_read_back() {
        assert_eq!(UsageOutcome::Valid.as_str(), "valid");
        assert_eq!(UsageOutcome::Reported.as_str(), "reported");
        let all = [UsageOutcome::Valid, UsageOutcome::Reported]
            .into_iter()
            .chain(Denial::ALL.into_iter().map(UsageOutcome::Denied));
        for outcome in all {
            assert_eq!(UsageOutcome::parse(outcome.as_str()), Some(outcome));
        }
        for denial in Denial::ALL {
            assert_eq!(UsageOutcome::Denied(denial).as_str(), denial.code());
        }
        let failed = |d| UsageOutcome::Denied(d).auth_failure().is_some();
        assert!(failed(Denial::Revoked) && failed(Denial::MissingApiKey));
        assert!(!failed(Denial::Forbidden) && !failed(Denial::RateLimited));
        assert_eq!(UsageOutcome::Valid.auth_failure(), None);
        assert_eq!(UsageOutcome::parse("no_such_code"), None);
    }

    #[test]
    fn failure_groups_are_capped_per_workspace_and_hour() {
        let mut pending = Pending::default();
        let mut groups = HashMap::new();
        let flood = MAX_FAILURE_GROUPS_PER_HOUR as u32 + 100;
        for n in 0..flood {
            let mut e = event(n, UsageOutcome::Denied(Denial::InvalidApiKey), None);
            e.at = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
            pending.add(e, &mut groups);
        }
        let batch = pending.to_batch();
        assert!(
            pending.requests.is_empty(),
            "unknown keys are not logged per request"
        );
        assert!(batch.rollups.is_empty());
        assert!(batch.auth_failures.len() <= MAX_FAILURE_GROUPS_PER_HOUR + 1);
        let attempts: u64 = batch.auth_failures.iter().map(|f| f.attempts).sum();
        assert_eq!(attempts, u64::from(flood), "folded, never lost");
        assert!(batch
            .auth_failures
            .iter()
            .any(|f| f.key_display == OTHER_DISPLAY));
    }

    #[tokio::test]
    async fn a_full_buffer_drops_and_counts_instead_of_waiting() {
        let store = keygate_store::connect("sqlite::memory:")
            .await
            .expect("store");
        let recorder = UsageRecorder::new(
            store,
            UsageSettings {
                buffer_capacity: 4,
                ..UsageSettings::default()
            },
        );
        for n in 0..10 {
            recorder.record(event(n, UsageOutcome::Valid, Some("key_a")));
        }
        assert_eq!(recorder.depth(), 4);
        assert_eq!(recorder.stats.dropped.load(Ordering::Relaxed), 6);
        recorder.flush().await;
        assert_eq!(recorder.depth(), 0);
        assert_eq!(recorder.stats.flushed.load(Ordering::Relaxed), 4);
        let mut text = String::new();
        recorder.render_metrics(&mut text);
        assert!(
            text.contains("keygate_usage_events_dropped_total 6\n"),
            "{text}"
        );
    }

    #[test]
    fn a_disabled_recorder_takes_nothing() {
        let recorder = UsageRecorder::default();
        recorder.record(event(1, UsageOutcome::Valid, Some("key_a")));
        assert_eq!(recorder.depth(), 0);
    }
}
