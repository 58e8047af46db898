//! What the flusher does with drained events before it writes them: sums them into rollups
//! (key × UTC day × operation × project × outcome), keeps one request-log row per identified
//! request, and folds failed authentications into capped per-hour groups.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use chrono::{DateTime, DurationRound, NaiveDate, Utc};
use keygate_core::{ids, Denial, Micros};
use keygate_store::{AuthFailure, RequestLogEntry, UsageBatch, UsageRollup};

use super::event::{UsageEvent, UsageOutcome};

/// Distinct failed-authentication groups one node writes per workspace and hour before it folds
/// further ones into a single "other" group.
pub const MAX_FAILURE_GROUPS_PER_HOUR: usize = 500;

/// The display form the folded "other" failure group is recorded under.
const OTHER_DISPLAY: &str = "(other)";

/// Failure groups seen per workspace and hour, to cap their number.
pub(super) type FailureGroups = HashMap<(String, DateTime<Utc>), HashSet<FailureKey>>;

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
pub(super) struct FailureKey {
    key_display: String,
    source_ip: Option<String>,
    code: Denial,
}

/// Events drained but not yet written, already summed.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) events: u64,
    /// Rollups by the hash of their key's fields, so summing an event into an existing rollup
    /// hashes borrowed fields and copies nothing; the key is built only for a new rollup.
    rollups: HashMap<u64, Vec<(RollupKey, Counters)>, foldhash::fast::RandomState>,
    hasher: foldhash::fast::RandomState,
    pub(super) requests: Vec<RequestLogEntry>,
    failures: HashMap<(String, DateTime<Utc>, FailureKey), AuthFailure>,
}

impl Pending {
    pub(super) fn add(&mut self, event: UsageEvent, groups: &mut FailureGroups) {
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

    fn add_failure(&mut self, event: &UsageEvent, denial: Denial, groups: &mut FailureGroups) {
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
    pub(super) fn to_batch(&self) -> UsageBatch {
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
    use crate::usage::event::tests::event;

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
}
