//! The check path of a management caller, shared by verify mode (`verify.rs`) and
//! reservations (`limits.rs`), and the limit states both answer with.

use keygate_api::limits::{LimitKind, LimitState, LimitUnit};
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
