//! What more than one resource module uses: the validators of shared fields and the lookups
//! of a key or a routing rule in the caller's workspace. Below every handler module, so the
//! handler modules never import one another.

use keygate_core::ids;
use keygate_core::model::ApiKey;
use keygate_core::routing::RoutingRule;
use keygate_core::text::Name;
use keygate_store::PageRequest;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// A name shown in lists and used by the CLI's typed delete confirmation (the bound lives in
/// `keygate_core::text`, shared by every named thing).
pub fn valid_name(name: &str) -> Result<String, ApiError> {
    Ok(Name::parse(name)?.into_string())
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
