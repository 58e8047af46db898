//! `/v1/workspace`: the caller's workspace and its policies (one active key at a time, plan
//! default rate limits, named stricter policies, credit balance and the `credits.low`
//! threshold). Owners change it.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use keygate_api::workspace::{Me, UpdateWorkspace, MAX_RATE_WINDOWS};
use keygate_core::limits::RateWindow;
use keygate_core::model::Workspace;
use keygate_core::text::PolicyName;
use keygate_core::KeyPrefix;

use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::invalidation::Change;
use crate::routes::common::{active_keys, one_active_key, valid_name};
use crate::state::AppState;

/// The caller's workspace and its settings.
#[utoipa::path(get, path = "/v1/workspace", tag = "workspace",
    responses((status = 200, description = "The workspace.", body = Workspace)))]
pub async fn get_workspace(caller: Caller) -> Json<Workspace> {
    Json((*caller.workspace).clone())
}

/// Which member (and role) the token belongs to, so the CLI and dashboard can say who is
/// logged in and hide what the role may not do.
#[utoipa::path(get, path = "/v1/me", tag = "workspace",
    responses((status = 200, description = "The caller and their workspace.", body = Me)))]
pub async fn get_me(caller: Caller) -> Json<Me> {
    Json(Me {
        member: (*caller.member).clone(),
        workspace: (*caller.workspace).clone(),
    })
}

/// Change the workspace's name and policies. Every change is audited.
#[utoipa::path(patch, path = "/v1/workspace", tag = "workspace",
    request_body = UpdateWorkspace,
    responses((status = 200, description = "The workspace as changed.", body = Workspace)))]
pub async fn update_workspace(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiJson(body): ApiJson<UpdateWorkspace>,
) -> Result<Json<Workspace>, ApiError> {
    let before = state.store.workspace(&caller.workspace.id).await?;
    let mut after = before.clone();
    if let Some(name) = body.name {
        after.name = valid_name(&name)?;
    }
    if let Some(single) = body.single_active_key {
        if single && !before.single_active_key {
            refuse_crowded_environments(&state, &before.id).await?;
        }
        after.single_active_key = single;
    }
    if let Some(windows) = body.default_rate_limits {
        after.default_rate_limits = valid_windows(windows)?;
    }
    if let Some(policies) = body.rate_limit_policies {
        PolicyName::check_count(policies.len())?;
        let mut checked = BTreeMap::new();
        for (name, windows) in policies {
            let name = PolicyName::parse(&name)?.into_string();
            if windows.is_empty() {
                return Err(ApiError::invalid(format!(
                    "policy {name:?} needs at least one window"
                )));
            }
            checked.insert(name, valid_windows(windows)?);
        }
        after.rate_limit_policies = checked;
    }
    if let Some(balance) = body.credit_balance {
        after.credit_balance = balance;
    }
    if let Some(threshold) = body.credits_low_threshold {
        after.credits_low_threshold = threshold;
    }
    if let Some(policy) = body.leak_policy {
        after.leak_policy = policy;
    }
    if let Some(prefix) = body.key_prefix {
        if prefix == "kgm" {
            // Management tokens are `kgm_…`: a key must never look like one.
            return Err(ApiError::invalid(
                "key_prefix \"kgm\" is reserved for management tokens; pick another",
            ));
        }
        after.key_prefix = KeyPrefix::parse(&prefix)
            .map_err(|e| ApiError::invalid(format!("key_prefix {prefix:?}: {e}")))?;
    }
    let to_json = |w: &Workspace| serde_json::to_value(w).unwrap_or_default();
    let entry = audit::entry(
        &caller,
        &origin,
        "workspace.update",
        "workspace",
        &after.id,
        audit::diff(&to_json(&before), &to_json(&after)),
        state.clock.now(),
    );
    state.store.save_workspace(&after, &entry).await?;
    state.changed(Change::Workspace(after.id.clone())).await;
    Ok(Json(after))
}

/// Turning the one-active-key policy on is refused while an environment has several active
/// keys, naming them: which to keep is the owner's decision, not ours. (The store checks the
/// same again when it saves, so a key created meanwhile cannot slip past.)
async fn refuse_crowded_environments(state: &AppState, workspace_id: &str) -> Result<(), ApiError> {
    let active = active_keys(state, workspace_id, None, 10_000).await?;
    let mut by_environment: BTreeMap<&str, Vec<keygate_core::model::ApiKey>> = BTreeMap::new();
    for key in &active {
        by_environment
            .entry(key.environment.as_str())
            .or_default()
            .push(key.clone());
    }
    let crowded = by_environment
        .into_iter()
        .find(|(_, keys)| keys.len() > 1)
        .map(|(environment, keys)| {
            one_active_key(
                environment,
                &keys[..keys.len().min(10)],
                "Disable or revoke all but one of them, then turn the policy on.",
            )
        });
    crowded.map_or(Ok(()), Err)
}

fn valid_windows(windows: Vec<RateWindow>) -> Result<Vec<RateWindow>, ApiError> {
    if windows.len() > MAX_RATE_WINDOWS || windows.iter().any(|w| w.limit == 0) {
        return Err(ApiError::invalid(
            "at most 10 rate windows, each with a limit of at least 1",
        ));
    }
    Ok(windows)
}
