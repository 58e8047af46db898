//! The verification pipeline shared by verify mode and the gateway:
//! authenticate → authorize → limit. This is the one place that decides whether a key may
//! make a request; the order of checks is the table of `docs/design.md` §3.
//!
//! Every handler that checks a key — `POST /v1/keys/verify`, `POST /v1/reservations`, the
//! proxy and the AI gateway — calls one function, [`check`]: it runs the checks, records the
//! request's usage once and builds the `RateLimit-*`/`Retry-After` headers once, and returns
//! the verdict with them ([`Checked`]). A handler only builds its [`Attempt`] and turns the
//! verdict into its own answer (a 200 body in verify mode, [`Checked::admitted`] in the
//! gateway), so verify mode and the gateway refuse, count and record the same way.
//!
//! Every request comes through a [`Door`] that says whose keys it takes: verify mode takes
//! only the caller's workspace's keys; a gateway route takes the workspaces its config names
//! — there is no door open to every workspace by default. A project requirement is met only
//! by a project of the key's own workspace, so `Scope::All` means "all of my workspace's
//! projects", never "any project id".
//!
//! Steps that need no I/O come first (`classify`), so a malformed key costs no lookup. The key
//! lookup goes through a coherent cache (`cache.rs`), so a hot key costs no database round
//! trip and a revocation is still seen by the very next request. Limits come last, through
//! the limiter, in one atomic call that checks and consumes. What an admitted request's
//! decision says of the key's budgets goes on to the webhook thresholds watch
//! (`webhooks::thresholds`), which costs the request a few comparisons unless a budget is
//! at 80% or more.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use keygate_api::verify::POLICY_HEADER;
use keygate_core::limits::RateWindow;
use keygate_core::model::{ApiKey, Identity, KeyMatch, Project, Workspace};
use keygate_core::verify::{check_key, classify, Requirement};
use keygate_core::{Denial, Micros, ParsedKey, PlainKey};
use keygate_limits::{Admission, Decision, IdentityLimits, LimitKind, Subject};

use crate::error::ApiError;
pub use crate::gateway::config::Workspaces;
use crate::state::{AppState, KeyMatches, LegacyKeys};
use crate::usage::UsageContext;
use crate::webhooks::Observed;

/// How the limiter should treat this request's consumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumption {
    /// Check and consume `tokens`/`cost` now.
    Admit,
    /// Hold `tokens`/`cost` as a worst case until settled or `ttl` passes.
    Reserve { ttl: Duration },
    /// Authenticate and authorize only: the limiter is not asked and nothing is consumed. For
    /// a caller that must refuse a bad key before it reads what the request would cost (the AI
    /// gateway reads its body only for a good key); it runs the checks again to consume. An
    /// admitted check is not counted as a verification, so a request counts once.
    Authenticate,
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

impl<'a> Attempt<'a> {
    /// A request that brings no amounts of its own (a gateway request before its cost is
    /// known, a model list): it consumes one request of the key's rate windows, under the rate
    /// policy its headers ask for. Verify mode and reservations set the amounts their bodies
    /// give; the AI gateway its worst case.
    pub fn request(
        key: Option<&'a str>,
        requirement: Requirement<'a>,
        headers: &'a HeaderMap,
    ) -> Self {
        Attempt {
            key,
            requirement,
            policy: requested_policy(headers),
            tokens: 0,
            cost: Micros::ZERO,
            consumption: Consumption::Admit,
        }
    }

    /// The same request, spending `tokens` and `cost` (what a verify or reservation body says).
    pub fn spending(self, tokens: u64, cost: Micros) -> Self {
        Attempt {
            tokens,
            cost,
            ..self
        }
    }

    /// The same request, holding its amounts as a worst case for `ttl` instead of spending them.
    pub fn reserving(self, ttl: Duration) -> Self {
        Attempt {
            consumption: Consumption::Reserve { ttl },
            ..self
        }
    }
}

/// The stricter named rate policy a request asks for in `keygate-ratelimit-policy`, read the
/// same way at every door (a value that is not text is as if none was sent).
pub fn requested_policy(headers: &HeaderMap) -> Option<&str> {
    headers.get(POLICY_HEADER).and_then(|v| v.to_str().ok())
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
    /// The key's identity, when it has one and the checks got as far as loading it.
    pub identity: Option<Arc<Identity>>,
}

impl Outcome {
    fn denied(denial: Denial, key: Option<Arc<KeyMatch>>) -> Self {
        Outcome {
            denial: Some(denial),
            key,
            decision: None,
            identity: None,
        }
    }
}

/// Whose keys a request may present, and so whose usage it is.
#[derive(Debug, Clone, Copy)]
pub enum Door<'a> {
    /// Verify mode: the caller's workspace; a key of any other workspace is unknown there, and
    /// every attempt (an unknown key's too) is the caller's usage.
    Caller(&'a Workspace),
    /// Gateway: the workspaces a route serves (from its config); a key of another workspace is
    /// refused `forbidden` before anything is counted against it. An attempt whose key was not
    /// identified belongs to no workspace and is not recorded.
    Route(&'a Workspaces),
}

/// No workspace at all: what a caller without one gets (see [`verify`]).
const NOBODY: &Workspaces = &Workspaces::Listed(Vec::new());

/// A checked request: the verdict, and the headers that go on whatever answers it.
#[derive(Debug)]
pub struct Checked {
    pub outcome: Outcome,
    /// `RateLimit-Limit/Remaining/Reset` when limits were checked, `Retry-After` when refused
    /// by one of them.
    pub headers: HeaderMap,
}

/// What a gateway handler carries on with once its request is admitted.
#[derive(Debug)]
pub struct Admitted {
    pub key: Arc<KeyMatch>,
    /// The limiter's hold, for a `Consumption::Reserve` check.
    pub reservation_id: Option<String>,
    /// The limit headers, for the answer.
    pub headers: HeaderMap,
}

impl Checked {
    /// Seconds until a refused request may be retried, when a limit says.
    pub fn retry_after(&self) -> Option<u64> {
        self.outcome
            .decision
            .as_ref()
            .and_then(|d| d.retry_after_secs)
    }

    /// The gateway's reading of the verdict: the admitted key, or the refusal to answer with
    /// (the denial's status and error body, with the limit headers).
    #[expect(
        clippy::result_large_err,
        reason = "the error is the response to send, built once per refused request"
    )]
    pub fn admitted(self) -> Result<Admitted, Response> {
        let retry = self.retry_after();
        match (self.outcome.denial, self.outcome.key) {
            (None, Some(key)) => Ok(Admitted {
                key,
                reservation_id: self.outcome.decision.and_then(|d| d.reservation_id),
                headers: self.headers,
            }),
            (denial, _) => {
                let denial = denial.unwrap_or(Denial::InvalidApiKey);
                Err((self.headers, ApiError::Denied(denial, retry)).into_response())
            }
        }
    }
}

/// Checks one request, the one way every handler does: runs the checks for `attempt` at
/// `door`, records its usage with `usage` (once), and builds its limit headers (once).
/// `Err` is for system failures only (store down, limiter down, an unknown policy name);
/// nothing is recorded for those.
///
/// What is recorded: a refusal, consuming nothing; an admitted `Admit` with the tokens and cost
/// it consumed; an admitted `Reserve` in verify mode as a request without tokens or cost (a
/// hold is not spending, and `POST /v1/reservations/{id}/settle` records nothing). Not
/// recorded here: an admitted `Authenticate` (the consuming check that follows is the
/// request), and an admitted `Reserve` at a gateway route, which the AI gateway's settlement
/// (`gateway::metering::Settlement`) records once with what was charged.
pub async fn check(
    state: &AppState,
    door: Door<'_>,
    attempt: &Attempt<'_>,
    usage: &UsageContext,
) -> Result<Checked, ApiError> {
    let outcome = run(state, door, attempt).await?;
    let now = state.clock.now();
    record(state, door, attempt, usage, &outcome, now);
    let mut headers = HeaderMap::new();
    if let Some(decision) = &outcome.decision {
        rate_limit_headers(decision, &mut headers, now);
    }
    Ok(Checked { outcome, headers })
}

/// Hands the usage event of a checked request to the recorder (see [`check`]).
fn record(
    state: &AppState,
    door: Door<'_>,
    attempt: &Attempt<'_>,
    usage: &UsageContext,
    outcome: &Outcome,
    at: DateTime<Utc>,
) {
    let admitted = outcome.denial.is_none();
    let (tokens, cost) = match attempt.consumption {
        Consumption::Authenticate if admitted => return,
        Consumption::Reserve { .. } if admitted && matches!(door, Door::Route(_)) => return,
        Consumption::Admit if admitted => (attempt.tokens, attempt.cost),
        _ => (0, Micros::ZERO),
    };
    let found = outcome.key.as_deref();
    let workspace_id = match (door, found) {
        (_, Some(found)) => found.key.workspace_id.as_str(),
        (Door::Caller(workspace), None) => workspace.id.as_str(),
        (Door::Route(_), None) => return,
    };
    let mut event = usage.event(
        at,
        workspace_id,
        found.map(|f| f.key.id.as_str()),
        outcome.denial.into(),
        tokens,
        cost,
    );
    if let (Door::Caller(_), Some(found)) = (door, found) {
        // Verify mode has always logged an identified key by its own display form (what the
        // key list shows); the gateway logs the form of the secret presented (during a
        // rotation's grace period, the old one). Kept apart so neither request log changes.
        event.key_display = Some(found.key.display.clone());
    }
    state.usage.record(event);
}

/// `RateLimit-Limit/Remaining/Reset` for the tightest request window (the one with the fewest
/// requests remaining), and `Retry-After` when refused.
fn rate_limit_headers(decision: &Decision, headers: &mut HeaderMap, now: DateTime<Utc>) {
    let tightest = decision
        .limits
        .iter()
        .filter(|l| matches!(l.kind, LimitKind::Rate { .. }))
        .min_by_key(|l| l.remaining);
    if let Some(limit) = tightest {
        let reset = limit
            .reset_at
            .map(|at| ((at - now).num_milliseconds().max(0) as u64).div_ceil(1000))
            .unwrap_or(0);
        headers.insert("ratelimit-limit", HeaderValue::from(limit.limit.max(0)));
        headers.insert(
            "ratelimit-remaining",
            HeaderValue::from(limit.remaining.max(0)),
        );
        headers.insert("ratelimit-reset", HeaderValue::from(reset));
    }
    if let (Some(_), Some(retry)) = (decision.denial, decision.retry_after_secs) {
        headers.insert("retry-after", HeaderValue::from(retry));
    }
}

/// Runs the checks for `attempt` in verify mode and nothing else: no usage is recorded and no
/// headers are built (handlers call [`check`]; this is the bare decision, for benchmarks).
/// `workspace` is the caller's workspace: a key of any other workspace is unknown there.
/// `None` admits no key. `Err` is for system failures only.
pub async fn verify(
    state: &AppState,
    workspace: Option<&Workspace>,
    attempt: &Attempt<'_>,
) -> Result<Outcome, ApiError> {
    let door = workspace.map_or(Door::Route(NOBODY), Door::Caller);
    run(state, door, attempt).await
}

async fn run(state: &AppState, door: Door<'_>, attempt: &Attempt<'_>) -> Result<Outcome, ApiError> {
    let started = std::time::Instant::now();
    let outcome = decide(state, door, attempt).await;
    state.metrics.verify_latency.observe(started.elapsed());
    let first_half = attempt.consumption == Consumption::Authenticate;
    if let Some(outcome) = outcome
        .as_ref()
        .ok()
        .filter(|o| !(first_half && o.denial.is_none()))
    {
        state.metrics.count_verification(outcome.denial);
        if let (None, Some(found)) = (outcome.denial, &outcome.key) {
            state.last_used.note(&found.key.id, state.clock.now());
        }
    }
    outcome
}

async fn decide(
    state: &AppState,
    door: Door<'_>,
    attempt: &Attempt<'_>,
) -> Result<Outcome, ApiError> {
    let workspace = match door {
        Door::Caller(ws) => Some(ws),
        Door::Route(_) => None,
    };
    let parsed = match classify(attempt.key) {
        Ok(parsed) => parsed,
        Err(denial) => return Ok(Outcome::denied(denial, None)),
    };
    let presented = PlainKey::from_untrusted(attempt.key.unwrap_or_default());
    let hash = match parsed {
        // Not checked against the workspace's prefix: a workspace that changed its prefix
        // still holds keys issued with the old one. A key of another workspace is found by
        // the lookup below to be none of this one's.
        ParsedKey::Native { .. } => state.secret.hash_key(&presented),
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
            let found = store.keys_by_hash(&hash).await;
            metrics.store_lookup_latency.observe(started.elapsed());
            found.map(|all| {
                (!all.is_empty()).then(|| KeyMatches(all.into_iter().map(Arc::new).collect()))
            })
        })
        .await?
        .and_then(|all| match door {
            Door::Caller(ws) => all.in_workspace(&ws.id),
            Door::Route(served) => all.only(|m| served.admits(&m.key.workspace_id)),
        });
    let Some(found) = found else {
        let denial = match parsed {
            ParsedKey::Native { .. } => Denial::InvalidApiKey,
            ParsedKey::Foreign => Denial::MalformedApiKey,
        };
        return Ok(Outcome::denied(denial, None));
    };

    if let Door::Route(served) = door {
        if !served.admits(&found.key.workspace_id) {
            return Ok(Outcome::denied(Denial::Forbidden, Some(found)));
        }
    }

    let now = state.clock.now();
    if let Err(denial) = check_key(Some(&found), &attempt.requirement, now) {
        return Ok(Outcome::denied(denial, Some(found)));
    }
    if let Some(project) = attempt.requirement.project {
        if !project_of(state, &found.key.workspace_id, project).await? {
            return Ok(Outcome::denied(Denial::Forbidden, Some(found)));
        }
    }
    let owned_ws;
    let workspace = match workspace {
        Some(ws) => ws,
        None => {
            owned_ws = state.workspace(&found.key.workspace_id).await?;
            &owned_ws
        }
    };
    let identity = key_identity(state, &found.key).await?;
    let admission = admission(workspace, &found, identity.as_deref(), attempt)?;
    let started = std::time::Instant::now();
    let decision = match attempt.consumption {
        Consumption::Authenticate => {
            return Ok(Outcome {
                denial: None,
                key: Some(found),
                decision: None,
                identity,
            })
        }
        Consumption::Admit => state.limiter.admit(&admission).await,
        Consumption::Reserve { ttl } => state.limiter.reserve(&admission, ttl).await,
    };
    state.metrics.limiter_latency.observe(started.elapsed());
    let decision = decision?;
    if decision.is_admitted() {
        state.thresholds.observe(
            &state.store,
            Observed {
                workspace,
                key: &found.key,
                admission: &admission,
                limits: &decision.limits,
                at: now,
            },
        );
    }
    Ok(Outcome {
        denial: decision.denial,
        key: Some(found),
        decision: Some(decision),
        identity,
    })
}

/// After spending no admission saw (a settle, a usage report): reads the key's limits from
/// the limiter in a task of its own, off the request, for the webhook thresholds watch. The
/// key is read from the store there when the caller does not have it (a settle knows only its
/// id). Failures are logged: the next request that sees the crossing reports it.
pub fn watch_spending(
    state: &AppState,
    workspace: Arc<Workspace>,
    key_id: String,
    key: Option<ApiKey>,
) {
    let state = state.clone();
    tokio::spawn(async move {
        let key = match key {
            Some(key) => key,
            None => match state.store.key(&workspace.id, &key_id).await {
                Ok(key) => key,
                Err(e) => {
                    tracing::debug!(error = %e, "thresholds after spending: no key to read");
                    return;
                }
            },
        };
        let found = KeyMatch {
            key,
            secret_expires_at: None,
        };
        let attempt = Attempt {
            key: None,
            requirement: Requirement::default(),
            policy: None,
            tokens: 0,
            cost: Micros::ZERO,
            consumption: Consumption::Admit,
        };
        let identity = match key_identity(&state, &found.key).await {
            Ok(identity) => identity,
            Err(e) => {
                tracing::debug!(error = ?e, "thresholds after spending: no identity to read");
                return;
            }
        };
        let Ok(admission) = admission(&workspace, &found, identity.as_deref(), &attempt) else {
            return;
        };
        match state.limiter.status(&admission).await {
            Ok(limits) => state.thresholds.observe(
                &state.store,
                Observed {
                    workspace: &workspace,
                    key: &found.key,
                    admission: &admission,
                    limits: &limits,
                    at: state.clock.now(),
                },
            ),
            Err(e) => {
                tracing::warn!(error = %e, "thresholds after spending: the limiter did not answer")
            }
        }
    });
}

/// The identity a key belongs to, from the cache; `None` for a key of no identity.
pub async fn key_identity(
    state: &AppState,
    key: &ApiKey,
) -> Result<Option<Arc<Identity>>, ApiError> {
    match &key.identity_id {
        Some(id) => state.identity(&key.workspace_id, id).await,
        None => Ok(None),
    }
}

/// Fills the limiter's request from the key, its identity, the workspace defaults and a
/// named policy. The identity's limits apply to every key of it, imported legacy keys too:
/// they are the customer's, not the key's.
pub fn admission(
    workspace: &Workspace,
    found: &KeyMatch,
    identity: Option<&Identity>,
    attempt: &Attempt<'_>,
) -> Result<Admission, ApiError> {
    let key = &found.key;
    let subject = Subject::new(key.workspace_id.as_str(), key.id.as_str())
        .with_identity(identity.map(|i| i.id.as_str()));
    let identity = identity.map(|i| IdentityLimits {
        identity_id: i.id.clone(),
        rate_limits: i.limits.rate_limits.clone(),
        token_limit: i.limits.token_limit,
        cost_limit: i.limits.cost_limit,
        daily_spend_cap: i.limits.daily_spend_cap,
    });
    if key.legacy {
        // Imported keys carry no limits of their own, nor the workspace's default windows or
        // policies, until they are replaced (the product promise). But what they spend is
        // counted like any key's and charged to the workspace's credits: an imported key is
        // not a way around the credit balance.
        return Ok(Admission {
            identity,
            credit_balance: workspace.credit_balance,
            tokens: attempt.tokens,
            cost: attempt.cost,
            ..Admission::new(subject)
        });
    }
    let mut rate_limits: Vec<RateWindow> = if key.limits.rate_limits.is_empty() {
        workspace.default_rate_limits.clone()
    } else {
        key.limits.rate_limits.clone()
    };
    if let Some(name) = attempt.policy {
        // The policy names are the workspace's business, not its customers': in gateway mode
        // this answer reaches an end customer, so it neither lists them nor echoes the header.
        // Members see the names in `GET /v1/workspace`.
        // A name that refers to nothing is "not found" (404), like any other reference to a
        // workspace's resource that does not exist.
        let policy = workspace.rate_limit_policies.get(name).ok_or_else(|| {
            ApiError::UnknownReference(
                "No rate-limit policy of the name in keygate-ratelimit-policy exists in this \
                 workspace; the workspace's policies are listed by GET /v1/workspace."
                    .into(),
            )
        })?;
        // A policy adds windows; it can only tighten, because every window must pass.
        rate_limits.extend(policy.iter().copied());
    }
    Ok(Admission {
        subject,
        rate_limits,
        token_limit: key.limits.token_limit,
        cost_limit: key.limits.cost_limit,
        daily_spend_cap: key.limits.daily_spend_cap,
        identity,
        credit_balance: workspace.credit_balance,
        tokens: attempt.tokens,
        cost: attempt.cost,
    })
}

/// Whether `project_id` is a project of `workspace_id` (cached: a project never changes
/// workspace; an unknown id is remembered for the cache's TTL). Anything that cannot be a
/// project id is answered without a lookup, so arbitrary client strings never fill the cache.
async fn project_of(
    state: &AppState,
    workspace_id: &str,
    project_id: &str,
) -> Result<bool, ApiError> {
    let plausible = project_id.len() <= 64
        && project_id.starts_with("proj_")
        && project_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plausible {
        return Ok(false);
    }
    let store = &state.store;
    let found = state
        .projects
        .get_or_load(
            &(workspace_id.to_owned(), project_id.to_owned()),
            || async move {
                match store.project(workspace_id, project_id).await {
                    Ok(project) => Ok(Some(project)),
                    Err(keygate_store::StoreError::NotFound) => Ok(None),
                    Err(e) => Err(e),
                }
            },
        )
        .await?;
    Ok(found.is_some_and(|p: std::sync::Arc<Project>| p.workspace_id == workspace_id))
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
