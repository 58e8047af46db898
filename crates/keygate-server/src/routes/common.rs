//! What more than one resource module uses: the validators of shared fields, the lookups
//! of a key or a routing rule in the caller's workspace, and the one way a key is changed. Below every handler module, so the
//! handler modules never import one another.

use keygate_core::ids;
use keygate_core::limits::KeyLimits;
use keygate_core::model::KeyStatus;
use keygate_core::model::{ApiKey, Identity};
use keygate_core::routing::RoutingRule;
use keygate_core::text::Name;
use keygate_store::{KeyFilter, PageRequest, SecretChange, StoreError};
use serde_json::{Map, Value};

use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::invalidation::Change;
use crate::state::AppState;

/// A name shown in lists and used by the CLI's typed delete confirmation (the bound lives in
/// `keygate_core::text`, shared by every named thing).
pub fn valid_name(name: &str) -> Result<String, ApiError> {
    Ok(Name::parse(name)?.into_string())
}

/// Limits of a key or an identity: at most 10 rate windows, none with a zero limit.
pub fn valid_limits(limits: KeyLimits) -> Result<KeyLimits, ApiError> {
    if limits.rate_limits.len() > 10 {
        return Err(ApiError::invalid("at most 10 rate windows are allowed"));
    }
    if limits.rate_limits.iter().any(|w| w.limit == 0) {
        return Err(ApiError::invalid(
            "a rate window's limit must be at least 1 (disable the key to stop all requests)",
        ));
    }
    Ok(limits)
}

/// Free-form metadata, within its size bound.
pub fn valid_metadata(metadata: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    keygate_core::text::check_metadata(&metadata)?;
    Ok(metadata)
}

/// Validates pagination parameters shared by every list endpoint.
pub fn page_request(limit: Option<u32>, cursor: Option<String>) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 500"));
    }
    Ok(PageRequest {
        after: cursor,
        limit,
    })
}

/// The key with this id in the caller's workspace, or 404.
pub(crate) async fn load_key(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ApiKey, ApiError> {
    if !ids::looks_like("key", id) {
        return Err(ApiError::NotFound("key"));
    }
    state
        .store
        .key(&caller.workspace.id, id)
        .await
        .map_err(ApiError::store_lookup("key"))
}

/// The identity with this id in the caller's workspace, or 404.
pub(crate) async fn load_identity(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Identity, ApiError> {
    if !ids::looks_like("idt", id) {
        return Err(ApiError::NotFound("identity"));
    }
    state
        .store
        .identity(&caller.workspace.id, id)
        .await
        .map_err(ApiError::store_lookup("identity"))
}

/// The routing rule with this id in the caller's workspace, or 404.
pub(crate) async fn load_rule(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<RoutingRule, ApiError> {
    if !ids::looks_like("rr", id) {
        return Err(ApiError::NotFound("routing rule"));
    }
    state
        .store
        .routing_rule(&caller.workspace.id, id)
        .await
        .map_err(ApiError::store_lookup("routing rule"))
}

/// The id of a rule of the caller's workspace, for a key's `routing_rule_id`.
pub async fn valid_rule_id(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<String, ApiError> {
    if !ids::looks_like("rr", id) {
        return Err(ApiError::invalid(format!(
            "routing_rule_id: {id:?} is not a routing rule id (`rr_…`)"
        )));
    }
    match load_rule(state, caller, id).await {
        Ok(rule) => Ok(rule.id),
        Err(ApiError::NotFound(_)) => Err(ApiError::UnknownReference(format!(
            "routing_rule_id: there is no routing rule {id:?} in this workspace (see GET /v1/routing-rules)."
        ))),
        Err(e) => Err(e),
    }
}

/// A key change as the audit trail records it.
pub(crate) struct KeyChange<'a> {
    /// `key.revoke`, `key.leaked`, …
    pub action: &'a str,
    pub secrets: SecretChange,
    /// Added to the audit row's changes under `note` (a leak's url and source); `Null` for
    /// none.
    pub note: Value,
}

impl<'a> KeyChange<'a> {
    pub(crate) fn plain(action: &'a str, secrets: SecretChange) -> Self {
        Self {
            action,
            secrets,
            note: Value::Null,
        }
    }
}

/// Applies `apply` to the stored key and saves it with its audit row, retrying when another
/// request saved the same key in between (each retry re-reads, so no change is lost). The
/// node's caches, and every other node's, drop the old key before this returns.
pub(crate) async fn change_key<F>(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    id: &str,
    change: KeyChange<'_>,
    apply: F,
) -> Result<ApiKey, ApiError>
where
    F: Fn(&mut ApiKey) -> Result<(), ApiError>,
{
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let current = load_key(state, caller, id).await?;
        let mut next = current.clone();
        apply(&mut next)?;
        let now = state.clock.now();
        next.updated_at = now;
        let mut changes = audit::diff(&key_json(&current), &key_json(&next));
        if !change.note.is_null() {
            if let Some(changes) = changes.as_object_mut() {
                changes.insert("note".into(), change.note.clone());
            }
        }
        let entry = audit::entry(caller, origin, change.action, "key", id, changes, now);
        match state
            .store
            .save_key(
                &next,
                &change.secrets,
                caller.workspace.single_active_key,
                &entry,
            )
            .await
        {
            Ok(saved) => {
                state.changed(Change::Key(id.to_owned())).await;
                return Ok(saved);
            }
            Err(StoreError::VersionConflict) if attempt < ATTEMPTS => continue,
            Err(e) => return Err(ApiError::store_lookup("key")(e)),
        }
    }
    Err(StoreError::VersionConflict.into())
}

/// A key as its audit diff compares it.
pub(crate) fn key_json(key: &ApiKey) -> Value {
    serde_json::to_value(key).unwrap_or(Value::Null)
}

/// A transition a revoked key refuses, as 409 `key_revoked`.
pub(crate) fn revoked_conflict(e: keygate_core::model::TransitionError) -> ApiError {
    ApiError::Conflict {
        code: keygate_api::error::ErrorCode::KeyRevoked,
        message: e.to_string(),
    }
}

/// The active keys of a workspace (of one environment, when given), oldest first, at most
/// `limit`: what a refusal under the one-active-key policy names.
pub(crate) async fn active_keys(
    state: &AppState,
    workspace_id: &str,
    environment: Option<&str>,
    limit: usize,
) -> Result<Vec<ApiKey>, ApiError> {
    let filter = KeyFilter {
        status: Some(KeyStatus::Active),
        environment: environment.map(str::to_owned),
        ..KeyFilter::default()
    };
    let mut found = Vec::new();
    let mut page = page_request(Some(100), None)?;
    loop {
        let listed = state.store.list_keys(workspace_id, &filter, &page).await?;
        found.extend(listed.items);
        match listed.next_cursor {
            Some(next) if found.len() < limit => page.after = Some(next),
            _ => break,
        }
    }
    found.reverse();
    found.truncate(limit);
    Ok(found)
}

/// 409 `one_active_key`, naming the keys in the way and what to do about them.
pub(crate) fn one_active_key(environment: &str, keys: &[ApiKey], what: &str) -> ApiError {
    let named: Vec<String> = keys
        .iter()
        .map(|k| format!("{} ({:?})", k.id, k.name))
        .collect();
    ApiError::Conflict {
        code: keygate_api::error::ErrorCode::OneActiveKey,
        message: format!(
            "This workspace allows one active key per environment, and {environment} has {}: \
             {}. {what}",
            if keys.len() == 1 { "one" } else { "several" },
            named.join(", ")
        ),
    }
}
