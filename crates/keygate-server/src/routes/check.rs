//! The check path of a management caller, shared by verify mode (`verify.rs`) and
//! reservations (`limits.rs`), and the limit states both answer with.

use keygate_api::limits::{LimitKind, LimitScope, LimitState, LimitUnit};
use keygate_api::verdict::Verdict;

use crate::audit::Origin;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::pipeline::{self, Attempt, Checked, Door};
use crate::state::AppState;
use crate::usage::UsageContext;

/// The one check path for a management caller (verify mode and reservations): the caller's
/// workspace is the door, and the request is recorded under the attempt's key and project,
/// the `operation` its body gave and the `source_ip` it gave (both validated) or else the
/// caller's own address. Returns the check and its verdict.
pub(crate) async fn check_for_caller(
    state: &AppState,
    caller: &Caller,
    attempt: &Attempt<'_>,
    origin: Origin,
    operation: String,
    source_ip: Option<String>,
) -> Result<(Checked, Verdict), ApiError> {
    let usage = UsageContext::new(
        origin.request_id,
        operation,
        attempt.requirement.project.map(str::to_owned),
        source_ip.or(origin.source_ip),
        attempt.key,
    );
    let checked = pipeline::check(state, Door::Caller(&caller.workspace), attempt, &usage).await?;
    let code = Verdict::from(checked.outcome.denial);
    Ok((checked, code))
}

/// The limiter's consumption of each limit as the answers show it (`limits` of verify mode,
/// reservations and `GET /v1/keys/{id}/limits`).
pub fn limit_states(states: &[keygate_limits::LimitState]) -> Vec<LimitState> {
    states
        .iter()
        .map(|state| {
            let (kind, window_secs) = match state.kind {
                keygate_limits::LimitKind::Rate { window_secs } => {
                    (LimitKind::Rate, Some(window_secs))
                }
                keygate_limits::LimitKind::Tokens => (LimitKind::Tokens, None),
                keygate_limits::LimitKind::Cost => (LimitKind::Cost, None),
                keygate_limits::LimitKind::DailySpendCap => (LimitKind::DailySpendCap, None),
                keygate_limits::LimitKind::Credits => (LimitKind::Credits, None),
            };
            let unit = match kind {
                LimitKind::Rate => LimitUnit::Requests,
                LimitKind::Tokens => LimitUnit::Tokens,
                LimitKind::Cost | LimitKind::DailySpendCap | LimitKind::Credits => {
                    LimitUnit::UsdMicros
                }
            };
            LimitState {
                kind,
                scope: match state.scope {
                    keygate_limits::LimitScope::Key => LimitScope::Key,
                    keygate_limits::LimitScope::Identity => LimitScope::Identity,
                    keygate_limits::LimitScope::Workspace => LimitScope::Workspace,
                },
                window_secs,
                unit,
                limit: state.limit,
                used: state.used,
                remaining: state.remaining,
                reset_at: state.reset_at,
            }
        })
        .collect()
}

/// The limit that refused a decision: of the refusing scope and the denial's kind, the one
/// with nothing left (for rate windows, the one that frees up last).
pub fn refusing_limit(decision: &keygate_limits::Decision) -> Option<LimitState> {
    use keygate_core::Denial;
    use keygate_limits::LimitKind as Kind;
    let (denial, scope) = (decision.denial?, decision.denied_by?);
    let of_denial = |kind: Kind| {
        matches!(
            (denial, kind),
            (Denial::RateLimited, Kind::Rate { .. })
                | (Denial::TokenLimitReached, Kind::Tokens)
                | (Denial::CostLimitReached, Kind::Cost)
                | (Denial::SpendCapReached, Kind::DailySpendCap)
                | (Denial::InsufficientCredits, Kind::Credits)
        )
    };
    let candidates: Vec<&keygate_limits::LimitState> = decision
        .limits
        .iter()
        .filter(|s| s.scope == scope && of_denial(s.kind))
        .collect();
    let chosen = candidates
        .iter()
        .filter(|s| s.remaining == 0)
        .max_by_key(|s| s.reset_at)
        .or_else(|| candidates.first())?;
    limit_states(std::slice::from_ref(*chosen)).pop()
}

/// The refusal's sentence, naming the identity's limit when that is what refused.
pub fn denial_message(outcome: &pipeline::Outcome) -> Option<String> {
    let denial = outcome.denial?;
    let by_identity = outcome
        .decision
        .as_ref()
        .is_some_and(|d| d.denied_by == Some(keygate_limits::LimitScope::Identity));
    Some(
        if by_identity {
            denial.identity_message()
        } else {
            denial.message()
        }
        .to_owned(),
    )
}
