//! `/v1/workspace`: the caller's workspace and its policies (one active key at a time, plan
//! default rate limits, named stricter policies, credit balance). Owners change it.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use keygate_core::limits::RateWindow;
use keygate_core::model::Workspace;
use keygate_core::text::PolicyName;
use keygate_core::Micros;
use serde::Deserialize;

use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{nullable, ApiJson};
use crate::invalidation::Change;
use crate::routes::keys::valid_name;
use crate::state::AppState;

pub async fn get_workspace(caller: Caller) -> Json<Workspace> {
    Json((*caller.workspace).clone())
}

/// `GET /v1/me`: which member (and role) a token belongs to, so the CLI and dashboard can say
/// who is logged in and hide what the role may not do.
pub async fn get_me(caller: Caller) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "member": *caller.member,
        "workspace": *caller.workspace,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspace {
    name: Option<String>,
    single_active_key: Option<bool>,
    default_rate_limits: Option<Vec<RateWindow>>,
    rate_limit_policies: Option<BTreeMap<String, Vec<RateWindow>>>,
    #[serde(default, deserialize_with = "nullable")]
    credit_balance: Option<Option<Micros>>,
}

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

fn valid_windows(windows: Vec<RateWindow>) -> Result<Vec<RateWindow>, ApiError> {
    if windows.len() > 10 || windows.iter().any(|w| w.limit == 0) {
        return Err(ApiError::invalid(
            "at most 10 rate windows, each with a limit of at least 1",
        ));
    }
    Ok(windows)
}
