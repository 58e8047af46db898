//! The verification pipeline shared by verify mode and the gateway:
//! authenticate → authorize → limit. This is the one place that decides whether a key may
//! make a request; the order of checks is PRODUCT.md's table.
//!
//! Steps that need no I/O come first (`classify`), so a malformed key costs no lookup. The key
//! lookup goes through a coherent cache (`cache.rs`), so a hot key costs no database round
//! trip and a revocation is still seen by the very next request. Limits come last, through
//! the limiter, in one atomic call that checks and consumes.

use std::sync::Arc;
use std::time::Duration;

use keygate_core::limits::RateWindow;
use keygate_core::model::{KeyMatch, Workspace};
use keygate_core::verify::{check_key, classify, Requirement};
use keygate_core::{Denial, Micros, ParsedKey, PlainKey};
use keygate_limits::{Admission, Decision, Subject};

use crate::error::ApiError;
use crate::state::{AppState, LegacyKeys};

/// How the limiter should treat this request's consumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumption {
    /// Check and consume `tokens`/`cost` now.
    Admit,
    /// Hold `tokens`/`cost` as a worst case until settled or `ttl` passes.
    Reserve { ttl: Duration },
}

/// What a request presents and needs.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub key: Option<&'a str>,
    pub requirement: Requirement<'a>,
    /// A named stricter rate policy (`keygate-ratelimit-policy`).
    pub policy: Option<&'a str>,
    pub tokens: u64,
    pub cost: Micros,
    pub consumption: Consumption,
}

/// The verdict and everything the caller needs to answer with it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `None` when the key may make the request.
    pub denial: Option<Denial>,
    /// The key, when one was identified (even if it was then refused).
    pub key: Option<Arc<KeyMatch>>,
    /// The limiter's decision, when limits were checked.
    pub decision: Option<Decision>,
}

impl Outcome {
    fn denied(denial: Denial, key: Option<Arc<KeyMatch>>) -> Self {
        Outcome {
            denial: Some(denial),
            key,
            decision: None,
        }
    }
}

/// Runs the checks for `attempt`. `workspace` is the caller's workspace in verify mode: a key
/// of any other workspace is unknown there. `Err` is for system failures only (store down,
/// limiter down, an unknown policy name).
pub async fn verify(
    state: &AppState,
    workspace: Option<&Workspace>,
    attempt: &Attempt<'_>,
) -> Result<Outcome, ApiError> {
    let started = std::time::Instant::now();
    let outcome = decide(state, workspace, attempt).await;
    state.metrics.verify_latency.observe(started.elapsed());
    if let Ok(outcome) = &outcome {
        state.metrics.count_verification(outcome.denial);
        if let (None, Some(found)) = (outcome.denial, &outcome.key) {
            state.last_used.note(&found.key.id, state.clock.now());
        }
    }
    outcome
}

async fn decide(
    state: &AppState,
    workspace: Option<&Workspace>,
    attempt: &Attempt<'_>,
) -> Result<Outcome, ApiError> {
    let parsed = match classify(attempt.key) {
        Ok(parsed) => parsed,
        Err(denial) => return Ok(Outcome::denied(denial, None)),
    };
    let presented = PlainKey::from_untrusted(attempt.key.unwrap_or_default());
    let hash = match parsed {
        ParsedKey::Native { prefix, .. } => {
            if workspace.is_some_and(|ws| ws.key_prefix.as_str() != prefix) {
                return Ok(Outcome::denied(Denial::InvalidApiKey, None));
            }
            state.secret.hash_key(&presented)
        }
        ParsedKey::Foreign => {
            if let Some(ws) = workspace {
                if !has_legacy_keys(state, &ws.id).await? {
                    return Ok(Outcome::denied(Denial::MalformedApiKey, None));
                }
            }
            state.secret.hash_legacy(&presented)
        }
    };

    let store = &state.store;
    let metrics = &state.metrics;
    let found = state
        .keys
        .get_or_load(&hash, || async move {
            metrics
                .store_key_lookups
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let started = std::time::Instant::now();
            let found = store.key_by_hash(&hash).await;
            metrics.store_lookup_latency.observe(started.elapsed());
            found
        })
        .await?
        .filter(|m| workspace.is_none_or(|ws| ws.id == m.key.workspace_id));
    let Some(found) = found else {
        let denial = match parsed {
            ParsedKey::Native { .. } => Denial::InvalidApiKey,
            ParsedKey::Foreign => Denial::MalformedApiKey,
        };
        return Ok(Outcome::denied(denial, None));
    };

    let now = state.clock.now();
    if let Err(denial) = check_key(Some(&found), &attempt.requirement, now) {
        return Ok(Outcome::denied(denial, Some(found)));
    }
    if found.key.legacy {
        // Imported keys authenticate but carry no limits until they are replaced.
        return Ok(Outcome {
            denial: None,
            key: Some(found),
            decision: None,
        });
    }

    let owned_ws;
    let workspace = match workspace {
        Some(ws) => ws,
        None => {
            owned_ws = state.workspace(&found.key.workspace_id).await?;
            &owned_ws
        }
    };
    let admission = admission(workspace, &found, attempt)?;
    let started = std::time::Instant::now();
    let decision = match attempt.consumption {
        Consumption::Admit => state.limiter.admit(&admission).await,
        Consumption::Reserve { ttl } => state.limiter.reserve(&admission, ttl).await,
    };
    state.metrics.limiter_latency.observe(started.elapsed());
    let decision = decision?;
    Ok(Outcome {
        denial: decision.denial,
        key: Some(found),
        decision: Some(decision),
    })
}

/// Fills the limiter's request from the key, the workspace defaults and a named policy.
pub fn admission(
    workspace: &Workspace,
    found: &KeyMatch,
    attempt: &Attempt<'_>,
) -> Result<Admission, ApiError> {
    let key = &found.key;
    let mut rate_limits: Vec<RateWindow> = if key.limits.rate_limits.is_empty() {
        workspace.default_rate_limits.clone()
    } else {
        key.limits.rate_limits.clone()
    };
    if let Some(name) = attempt.policy {
        let policy = workspace.rate_limit_policies.get(name).ok_or_else(|| {
            ApiError::invalid(format!(
                "Unknown rate-limit policy {name:?} in keygate-ratelimit-policy. Known policies: {}.",
                known_policies(workspace)
            ))
        })?;
        // A policy adds windows; it can only tighten, because every window must pass.
        rate_limits.extend(policy.iter().copied());
    }
    Ok(Admission {
        subject: Subject {
            workspace_id: key.workspace_id.clone(),
            key_id: key.id.clone(),
        },
        rate_limits,
        token_limit: key.limits.token_limit,
        cost_limit: key.limits.cost_limit,
        daily_spend_cap: key.limits.daily_spend_cap,
        credit_balance: workspace.credit_balance,
        tokens: attempt.tokens,
        cost: attempt.cost,
    })
}

fn known_policies(workspace: &Workspace) -> String {
    if workspace.rate_limit_policies.is_empty() {
        return "none are configured".into();
    }
    workspace
        .rate_limit_policies
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

async fn has_legacy_keys(state: &AppState, workspace_id: &str) -> Result<bool, ApiError> {
    let store = &state.store;
    let flag = state
        .legacy
        .get_or_load(&workspace_id.to_owned(), || async move {
            store.has_legacy_keys(workspace_id).await.map(|present| {
                Some(LegacyKeys {
                    workspace_id: workspace_id.to_owned(),
                    present,
                })
            })
        })
        .await?;
    Ok(flag.is_some_and(|f| f.present))
}
