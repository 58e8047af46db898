//! `/v1/routing-rules`: how the AI gateway routes a key's requests (see
//! `keygate-core/src/routing.rs`). Owners and editors write, viewers read; every change is
//! audited in the same transaction. A key uses the rule in its `routing_rule_id`, else the
//! workspace's default rule — the one rule saved with `"default": true` (saving another
//! default takes the flag from the previous one) — else the first provider in the config that
//! serves the requested model.
//!
//! When the server has AI providers configured, a rule may only name those providers and map
//! models only to models with a price (requests are charged by the model actually called), so
//! a typo or a free ride is caught when the rule is written rather than when a request needs it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use keygate_api::routing::{CreateRoutingRule, UpdateRoutingRule};
use keygate_api::Items;
use keygate_core::ids;
use keygate_core::routing::{validate_targets, RoutingRule};
use serde_json::Value;

use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::invalidation::Change;
use crate::routes::common::{load_rule, valid_name};
use crate::state::AppState;

/// Create a routing rule. With AI providers configured, it may name only those providers and
/// map models only to priced ones.
#[utoipa::path(post, path = "/v1/routing-rules", tag = "routing rules",
    request_body = CreateRoutingRule,
    responses((status = 201, description = "The new rule.", body = RoutingRule)))]
pub async fn create_routing_rule(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiJson(body): ApiJson<CreateRoutingRule>,
) -> Result<impl IntoResponse, ApiError> {
    let now = state.clock.now();
    let rule = RoutingRule {
        id: ids::new_id("rr"),
        workspace_id: caller.workspace.id.clone(),
        name: valid_name(&body.name)?,
        description: valid_description(body.description)?,
        mode: body.mode,
        targets: body.targets,
        is_default: body.default,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    check_targets(&state, &rule)?;
    let entry = audit::entry(
        &caller,
        &origin,
        "routing_rule.create",
        "routing_rule",
        &rule.id,
        audit::diff(&Value::Null, &to_json(&rule)),
        now,
    );
    state.store.create_routing_rule(&rule, &entry).await?;
    rules_changed(&state, &rule).await;
    Ok((StatusCode::CREATED, Json(rule)))
}

/// Every routing rule of the workspace.
#[utoipa::path(get, path = "/v1/routing-rules", tag = "routing rules",
    responses((status = 200, description = "The rules.", body = Items<RoutingRule>)))]
pub async fn list_routing_rules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Items<RoutingRule>>, ApiError> {
    let items = state.store.list_routing_rules(&caller.workspace.id).await?;
    Ok(Json(Items { items }))
}

/// One routing rule.
#[utoipa::path(get, path = "/v1/routing-rules/{id}", tag = "routing rules",
    params(("id" = String, Path, description = "The rule's id (`rr_…`).")),
    responses((status = 200, description = "The rule.", body = RoutingRule)))]
pub async fn get_routing_rule(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RoutingRule>, ApiError> {
    Ok(Json(load_rule(&state, &caller, &id).await?))
}

/// Change a routing rule: only the fields sent change.
#[utoipa::path(patch, path = "/v1/routing-rules/{id}", tag = "routing rules",
    params(("id" = String, Path, description = "The rule's id (`rr_…`).")),
    request_body = UpdateRoutingRule,
    responses((status = 200, description = "The rule as changed.", body = RoutingRule)))]
pub async fn update_routing_rule(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateRoutingRule>,
) -> Result<Json<RoutingRule>, ApiError> {
    let name = body.name.as_deref().map(valid_name).transpose()?;
    let description = body.description.map(valid_description).transpose()?;
    let current = load_rule(&state, &caller, &id).await?;
    let mut next = current.clone();
    if let Some(name) = name {
        next.name = name;
    }
    if let Some(description) = description {
        next.description = description;
    }
    if let Some(mode) = body.mode {
        next.mode = mode;
    }
    if let Some(targets) = body.targets {
        next.targets = targets;
    }
    if let Some(default) = body.default {
        next.is_default = default;
    }
    check_targets(&state, &next)?;
    let now = state.clock.now();
    next.updated_at = now;
    let entry = audit::entry(
        &caller,
        &origin,
        "routing_rule.update",
        "routing_rule",
        &id,
        audit::diff(&to_json(&current), &to_json(&next)),
        now,
    );
    let saved = state
        .store
        .save_routing_rule(&next, &entry)
        .await
        .map_err(ApiError::store_lookup("routing rule"))?;
    rules_changed(&state, &saved).await;
    Ok(Json(saved))
}

/// Delete a routing rule; keys that used it fall back to the workspace's default rule.
#[utoipa::path(delete, path = "/v1/routing-rules/{id}", tag = "routing rules",
    params(("id" = String, Path, description = "The rule's id (`rr_…`).")),
    responses((status = 204, description = "The rule is deleted.")))]
pub async fn delete_routing_rule(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let current = load_rule(&state, &caller, &id).await?;
    let now = state.clock.now();
    let entry = audit::entry(
        &caller,
        &origin,
        "routing_rule.delete",
        "routing_rule",
        &id,
        audit::diff(&to_json(&current), &Value::Null),
        now,
    );
    let cleared = state
        .store
        .delete_routing_rule(&caller.workspace.id, &id, &entry)
        .await
        .map_err(ApiError::store_lookup("routing rule"))?;
    rules_changed(&state, &current).await;
    for key_id in cleared {
        state.changed(Change::Key(key_id)).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

fn check_targets(state: &AppState, rule: &RoutingRule) -> Result<(), ApiError> {
    validate_targets(&rule.targets).map_err(|e| ApiError::invalid(format!("targets: {e}")))?;
    let ai = state.gateway.as_ref().and_then(|g| g.config.ai.as_ref());
    if let Some(ai) = ai {
        if let Some(unknown) = rule
            .targets
            .iter()
            .find(|t| ai.provider(&t.provider).is_none())
        {
            let known: Vec<&str> = ai.providers.iter().map(|p| p.name.as_str()).collect();
            return Err(ApiError::invalid(format!(
                "targets: provider {:?} is not configured on this server; configured: {}",
                unknown.provider,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        // A request is charged by the model actually called, so a mapping to a model without
        // a price would make it free (or, before, priced as the model the client named).
        let unpriced = rule
            .targets
            .iter()
            .flat_map(|t| t.models.iter().map(move |(from, to)| (t, from, to)))
            .find(|(_, _, to)| !ai.prices.contains_key(*to));
        if let Some((target, from, to)) = unpriced {
            return Err(ApiError::invalid(format!(
                "targets: provider {:?} maps model {from:?} to {to:?}, which has no price on this \
                 server; requests are charged by the model actually called, so map it to a \
                 priced model or ask the operator to add [ai.prices.\"{to}\"]",
                target.provider
            )));
        }
    }
    Ok(())
}

fn valid_description(description: Option<String>) -> Result<Option<String>, ApiError> {
    match description {
        Some(d) => Ok(keygate_core::text::Description::parse(&d)?.map(String::from)),
        None => Ok(None),
    }
}

fn to_json(rule: &RoutingRule) -> Value {
    serde_json::to_value(rule).unwrap_or(Value::Null)
}

async fn rules_changed(state: &AppState, rule: &RoutingRule) {
    state
        .changed(Change::RoutingRule {
            workspace_id: rule.workspace_id.clone(),
            rule_id: rule.id.clone(),
        })
        .await;
}
