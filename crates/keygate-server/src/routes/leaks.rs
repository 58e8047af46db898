//! `POST /v1/leaks`: a secret scanner (or a person) reports secrets found in public; each
//! that is a key of the caller's workspace gets the workspace's leak policy (revoke by
//! default, disable, or notify only) and a `key.leaked` audit row with where it was found.
//!
//! Nothing here reveals another workspace: a token is hashed and looked up like a presented
//! key, and a key of another workspace answers exactly as no key at all. The reported url is
//! recorded, never fetched.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use keygate_api::leaks::{LeakAction, LeakOutcome, LeakReport, LeakReports, MAX_LEAKS};
use keygate_api::Items;
use keygate_core::key::{display_form, ParsedKey};
use keygate_core::model::{KeyStatus, LeakPolicy};
use keygate_core::{KeyHash, PlainKey};
use keygate_store::SecretChange;
use serde_json::json;

use crate::audit::Origin;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJsonList;
use crate::routes::common::{change_key, revoked_conflict, KeyChange};
use crate::state::AppState;

/// Report leaked secrets. Each reported token that is a key of this workspace is handled by
/// the workspace's `leak_policy` (`revoke`, the default; `disable`; or `notify`) and recorded
/// as `key.leaked` in the audit trail with the report's url, source and type. The answer has
/// one outcome per token, in order; a token that is not a key of this workspace (another
/// workspace's included) answers `"matched": false`.
#[utoipa::path(post, path = "/v1/leaks", tag = "keys",
    request_body(content = inline(LeakReports), description = "1 to 100 reported secrets, as secret scanners send them.", content_type = "application/json"),
    responses((status = 200, description = "One outcome per reported token, in the order reported.", body = Items<LeakOutcome>)))]
pub async fn report_leaks(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiJsonList(reports): ApiJsonList<LeakReport>,
) -> Result<Json<Items<LeakOutcome>>, ApiError> {
    if reports.is_empty() || reports.len() > MAX_LEAKS {
        return Err(ApiError::invalid(format!(
            "report 1 to {MAX_LEAKS} secrets at a time"
        )));
    }
    for (i, report) in reports.iter().enumerate() {
        check_lengths(i, report)?;
    }
    let mut items = Vec::with_capacity(reports.len());
    let mut seen = HashMap::new();
    for report in &reports {
        items.push(handle(&state, &caller, &origin, report, &mut seen).await?);
    }
    Ok(Json(Items { items }))
}

fn check_lengths(i: usize, report: &LeakReport) -> Result<(), ApiError> {
    let over = |text: &Option<String>, max: usize| {
        text.as_deref()
            .is_some_and(|text| text.chars().count() > max)
    };
    // As documented: at most 256 characters as sent, and not only spaces.
    if report.token.trim().is_empty() || report.token.chars().count() > 256 {
        return Err(ApiError::invalid(format!(
            "[{i}].token must be 1 to 256 characters"
        )));
    }
    if over(&report.kind, 100) || over(&report.source, 100) || over(&report.url, 2048) {
        return Err(ApiError::invalid(format!(
            "[{i}]: type and source are at most 100 characters, url at most 2048"
        )));
    }
    Ok(())
}

async fn handle(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    report: &LeakReport,
    seen: &mut HashMap<KeyHash, LeakOutcome>,
) -> Result<LeakOutcome, ApiError> {
    let token = report.token.trim();
    let unmatched = LeakOutcome {
        token: display_form(token),
        matched: false,
        key_id: None,
        action: None,
    };
    let presented = PlainKey::from_untrusted(token);
    let hash = match ParsedKey::parse(token) {
        Ok(ParsedKey::Native { .. }) => state.secret.hash_key(&presented),
        Ok(ParsedKey::Foreign) => state.secret.hash_legacy(&presented),
        Err(_) => return Ok(unmatched),
    };
    // The same secret twice in one report is handled (and audited) once.
    if let Some(outcome) = seen.get(&hash) {
        return Ok(outcome.clone());
    }
    let found = state
        .store
        .keys_by_hash(&hash)
        .await?
        .into_iter()
        .find(|m| m.key.workspace_id == caller.workspace.id);
    let Some(found) = found else {
        seen.insert(hash, unmatched.clone());
        return Ok(unmatched);
    };
    let now = state.clock.now();
    let policy = caller.workspace.leak_policy;
    // An old secret of a rotated key is not the key: ending that secret is the whole answer
    // (revoking the key would cut off the secret its owner rotated to), and a secret that
    // no longer works needs nothing at all.
    let action = match (found.secret_expires_at, found.key.status, policy) {
        (Some(end), _, _) if end <= now => LeakAction::SecretExpired,
        (_, KeyStatus::Revoked, _) => LeakAction::AlreadyRevoked,
        (_, _, LeakPolicy::Notify) => LeakAction::Notified,
        (Some(_), _, _) => LeakAction::OldSecretEnded,
        (None, _, LeakPolicy::Revoke) => LeakAction::Revoked,
        (None, _, LeakPolicy::Disable) => LeakAction::Disabled,
    };
    let note = json!({
        "url": report.url,
        "source": report.source,
        "type": report.kind,
        "policy": policy.as_str(),
        "action": action,
    });
    let secrets = match action {
        LeakAction::OldSecretEnded => SecretChange::EndRetiring { at: now },
        _ => SecretChange::None,
    };
    let change = KeyChange {
        action: "key.leaked",
        secrets,
        note,
    };
    change_key(state, caller, origin, &found.key.id, change, |key| {
        match action {
            LeakAction::Revoked => key.revoke(),
            // Revoked meanwhile by someone else: that is more than disabling.
            LeakAction::Disabled if key.status != KeyStatus::Revoked => {
                key.set_enabled(false).map_err(revoked_conflict)?;
            }
            _ => {}
        }
        Ok(())
    })
    .await?;
    let outcome = LeakOutcome {
        matched: true,
        key_id: Some(found.key.id.clone()),
        action: Some(action),
        ..unmatched
    };
    seen.insert(hash, outcome.clone());
    Ok(outcome)
}
