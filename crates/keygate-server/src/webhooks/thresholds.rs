//! `limit.threshold` and `credits.low`, read off the limiter's answer to an admitted request.
//!
//! The hot path pays a few integer comparisons per budget: nothing else happens until a
//! budget is at 80% or more (or the credit at its threshold). Then the event's mark is looked
//! up in this node's set of marks already written; only a mark not there yet goes to the
//! store, in a task of its own, so the request never waits for it. The store's unique mark
//! makes the event once across nodes; the set makes each node write a mark at most once.
//!
//! A mark names the budget's period (its start, from the limiter's `reset_at`) and its limit,
//! so a new period, or a changed limit, earns its own events; a credit mark names the credit
//! balance, so raising the balance re-arms `credits.low`. Rate windows send no events.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use keygate_core::events::{EventType, Threshold};
use keygate_core::limits::ResetPeriod;
use keygate_core::model::{ApiKey, Workspace};
use keygate_core::{ids, Micros};
use keygate_limits::{Admission, LimitKind, LimitScope, LimitState};
use keygate_store::{MarkedEvent, Store};
use serde_json::{json, Value};

use super::body::event_body;

/// Marks remembered per node. Past this the set starts afresh: a forgotten mark costs one
/// write that finds it taken, nothing more.
const MAX_REMEMBERED: usize = 100_000;

/// The marks this node has written (or is writing).
#[derive(Debug, Default)]
pub struct ThresholdWatch {
    written: Arc<Mutex<HashSet<String>>>,
}

/// What an admitted request (or a settle or usage report) showed of a key's limits.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub workspace: &'a Workspace,
    pub key: &'a ApiKey,
    /// What the limiter was asked: the reset periods of the budgets and the identity.
    pub admission: &'a Admission,
    pub limits: &'a [LimitState],
    pub at: DateTime<Utc>,
}

impl ThresholdWatch {
    /// Queues the events `seen` crosses into, each once (see the module's doc).
    pub fn observe(&self, store: &Arc<dyn Store>, seen: Observed<'_>) {
        for limit in seen.limits {
            match limit.kind {
                LimitKind::Rate { .. } => {}
                LimitKind::Credits => {
                    if let Some(mark) = credits_low_mark(&seen, limit) {
                        if self.claim(&seen, &mark) {
                            self.write(store, &seen, credits_low(&seen, limit, mark));
                        }
                    }
                }
                LimitKind::Tokens | LimitKind::Cost | LimitKind::DailySpendCap => {
                    if !Threshold::Percent80.reached(limit.used, limit.limit) {
                        continue; // the hot path, almost always
                    }
                    for threshold in Threshold::ALL {
                        if !threshold.reached(limit.used, limit.limit) {
                            continue;
                        }
                        let Some(crossing) = threshold_crossing(&seen, limit, threshold) else {
                            continue;
                        };
                        if self.claim(&seen, &crossing.mark) {
                            self.write(store, &seen, limit_threshold(&seen, limit, crossing));
                        }
                    }
                }
            }
        }
    }

    /// Whether this node is to write `mark` (of `seen`'s workspace): true the first time only.
    /// The mark is the only thing built until then, so a budget that stays above a threshold
    /// costs each request a lookup, not an event.
    fn claim(&self, seen: &Observed<'_>, mark: &str) -> bool {
        let remembered = remembered(&seen.workspace.id, mark);
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written.contains(&remembered) {
            return false;
        }
        if written.len() >= MAX_REMEMBERED {
            written.clear();
        }
        written.insert(remembered)
    }

    /// Writes a claimed event in a task of its own; a failed write is forgotten, so the next
    /// request that sees the crossing tries again.
    fn write(&self, store: &Arc<dyn Store>, seen: &Observed<'_>, event: MarkedEvent) {
        let store = store.clone();
        let written = self.written.clone();
        let remembered = remembered(&seen.workspace.id, &event.mark);
        tokio::spawn(async move {
            if let Err(e) = store.queue_marked_event(&event).await {
                tracing::warn!(error = %e, event = event.event_type.as_str(), "could not queue a webhook event; the next request will try again");
                written
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&remembered);
            }
        });
    }
}

/// A mark as this node remembers it: marks are unique per workspace only.
fn remembered(workspace_id: &str, mark: &str) -> String {
    format!("{workspace_id}/{mark}")
}

/// A budget's crossing: its mark and the period it is in.
struct Crossing {
    mark: String,
    threshold: Threshold,
    period_start: DateTime<Utc>,
}

/// The crossing of `threshold` by a key's or an identity's budget, or `None` for a limit of
/// no known owner or period.
fn threshold_crossing(
    seen: &Observed<'_>,
    limit: &LimitState,
    threshold: Threshold,
) -> Option<Crossing> {
    let admission = seen.admission;
    let identity = admission.identity.as_ref();
    let (owner, token_limit, cost_limit) = match limit.scope {
        LimitScope::Key => (
            seen.key.id.as_str(),
            admission.token_limit,
            admission.cost_limit,
        ),
        LimitScope::Identity => (
            admission.subject.identity_id.as_deref()?,
            identity.and_then(|i| i.token_limit),
            identity.and_then(|i| i.cost_limit),
        ),
        LimitScope::Workspace => return None,
    };
    let (kind, period) = match limit.kind {
        LimitKind::Tokens => ("tokens", token_limit?.reset),
        LimitKind::Cost => ("cost", cost_limit?.reset),
        LimitKind::DailySpendCap => ("daily_spend_cap", ResetPeriod::Daily),
        LimitKind::Rate { .. } | LimitKind::Credits => return None,
    };
    // The limiter's reset is the end of the period it counted in: the period is the one just
    // before it (the clocks of this node and the limiter's store cannot disagree about that).
    let period_start = match limit.reset_at {
        Some(reset) => period.period_start(reset - chrono::Duration::milliseconds(1)),
        None => period.period_start(seen.at),
    };
    let scope = scope_name(limit.scope);
    let mark = format!(
        "limit.threshold:{scope}:{owner}:{kind}:{}:{}:{}",
        period_start.timestamp_millis(),
        limit.limit,
        threshold.percent()
    );
    Some(Crossing {
        mark,
        threshold,
        period_start,
    })
}

/// The `limit.threshold` event of a crossing.
fn limit_threshold(seen: &Observed<'_>, limit: &LimitState, crossing: Crossing) -> MarkedEvent {
    let Crossing {
        mark,
        threshold,
        period_start,
    } = crossing;
    let mut data = json!({
        "workspace_id": seen.workspace.id,
        "key_id": seen.key.id,
        "key_display": seen.key.display,
        "threshold": threshold.percent(),
        "period_start": period_start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if let Some(identity_id) = &seen.admission.subject.identity_id {
        data["identity_id"] = Value::from(identity_id.as_str());
    }
    // `kind`, `scope`, `unit`, `limit`, `used`, `remaining`, `reset_at`: as verify answers.
    if let (Some(data), Ok(Value::Object(state))) =
        (data.as_object_mut(), serde_json::to_value(limit))
    {
        data.extend(state);
    }
    marked(seen, mark, EventType::LimitThreshold, data)
}

/// The mark of `credits.low` when what remains of the credit is at or below the workspace's
/// threshold: the credit balance, so a raised balance is a new mark.
fn credits_low_mark(seen: &Observed<'_>, credits: &LimitState) -> Option<String> {
    let threshold = seen.workspace.credits_low_threshold?;
    let remaining = credits.limit.saturating_sub(credits.used);
    (remaining <= threshold.0).then(|| format!("credits.low:{}", credits.limit))
}

fn credits_low(seen: &Observed<'_>, credits: &LimitState, mark: String) -> MarkedEvent {
    let remaining = credits.limit.saturating_sub(credits.used);
    let data = json!({
        "workspace_id": seen.workspace.id,
        "credit_balance": Micros(credits.limit),
        "spent": Micros(credits.used),
        "remaining": Micros(remaining.max(0)),
        "threshold": seen.workspace.credits_low_threshold,
        "key_id": seen.key.id,
    });
    marked(seen, mark, EventType::CreditsLow, data)
}

fn marked(seen: &Observed<'_>, mark: String, event: EventType, data: Value) -> MarkedEvent {
    MarkedEvent {
        workspace_id: seen.workspace.id.clone(),
        mark,
        event_id: ids::new_id("evt"),
        event_type: event,
        payload: event_body(event, seen.at, data),
        at: seen.at,
    }
}

fn scope_name(scope: LimitScope) -> &'static str {
    match scope {
        LimitScope::Key => "key",
        LimitScope::Identity => "identity",
        LimitScope::Workspace => "workspace",
    }
}
