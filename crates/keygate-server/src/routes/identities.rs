//! `/v1/identities`: the customers who hold keys. Roles as for keys (owners and editors
//! write, viewers read), every change audited in its transaction. An identity's limits are
//! checked with each of its keys' on every verification, all or nothing (the limiter does
//! that); its usage is its keys' usage (`GET /v1/identities/{id}/usage`, in `usage.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use keygate_api::identities::{CreateIdentity, IdentityPage, ListIdentities, UpdateIdentity};
use keygate_core::ids;
use keygate_core::model::Identity;
use keygate_store::StoreError;
use serde_json::Value;

use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::invalidation::Change;
use crate::routes::common::{
    load_identity, page_request, valid_limits, valid_metadata, valid_name,
};
use crate::state::AppState;

/// The longest external id: room for any platform's customer ids (Stripe's are ~18, UUIDs 36).
const MAX_EXTERNAL_ID_CHARS: usize = 255;

/// Create an identity.
#[utoipa::path(post, path = "/v1/identities", tag = "identities",
    request_body = CreateIdentity,
    responses((status = 201, description = "The new identity.", body = Identity)))]
pub async fn create_identity(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiJson(body): ApiJson<CreateIdentity>,
) -> Result<impl IntoResponse, ApiError> {
    let now = state.clock.now();
    let identity = Identity {
        id: ids::new_id("idt"),
        workspace_id: caller.workspace.id.clone(),
        external_id: valid_external_id(&body.external_id)?,
        name: body.name.as_deref().map(valid_name).transpose()?,
        metadata: valid_metadata(body.metadata)?,
        limits: valid_limits(body.limits)?,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let entry = audit::entry(
        &caller,
        &origin,
        "identity.create",
        "identity",
        &identity.id,
        audit::diff(&Value::Null, &to_json(&identity)),
        now,
    );
    state.store.create_identity(&identity, &entry).await?;
    Ok((StatusCode::CREATED, Json(identity)))
}

/// The workspace's identities, newest first, a page at a time; or the one with an
/// `external_id`.
#[utoipa::path(get, path = "/v1/identities", tag = "identities",
    params(ListIdentities),
    responses((status = 200, description = "A page of identities.", body = IdentityPage)))]
pub async fn list_identities(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListIdentities>,
) -> Result<Json<IdentityPage>, ApiError> {
    list(&state, &caller, query).await.map(Json)
}

/// A page of the caller's workspace's identities, or the one with `query.external_id`: the
/// API's list and the dashboard's (the caller's role is checked by whoever calls).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    query: ListIdentities,
) -> Result<IdentityPage, ApiError> {
    let page = page_request(query.limit, query.cursor)?;
    if let Some(external_id) = query.external_id {
        let external_id = valid_external_id(&external_id)?;
        let items = match state
            .store
            .identity_by_external_id(&caller.workspace.id, &external_id)
            .await
        {
            Ok(identity) => vec![identity],
            Err(StoreError::NotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        return Ok(IdentityPage {
            items,
            next_cursor: None,
        });
    }
    let page = state
        .store
        .list_identities(&caller.workspace.id, &page)
        .await?;
    Ok(IdentityPage {
        items: page.items,
        next_cursor: page.next_cursor,
    })
}

/// One identity.
#[utoipa::path(get, path = "/v1/identities/{id}", tag = "identities",
    params(("id" = String, Path, description = "The identity's id (`idt_…`); any other id is not found.", pattern = r"^idt_[A-Za-z0-9]{1,64}$")),
    responses((status = 200, description = "The identity.", body = Identity)))]
pub async fn get_identity(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Identity>, ApiError> {
    Ok(Json(load_identity(&state, &caller, &id).await?))
}

/// Change an identity: only the fields sent change. New limits apply to the next request of
/// any of its keys, on every node.
#[utoipa::path(patch, path = "/v1/identities/{id}", tag = "identities",
    params(("id" = String, Path, description = "The identity's id (`idt_…`); any other id is not found.", pattern = r"^idt_[A-Za-z0-9]{1,64}$")),
    request_body = UpdateIdentity,
    responses((status = 200, description = "The identity as saved.", body = Identity)))]
pub async fn update_identity(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateIdentity>,
) -> Result<Json<Identity>, ApiError> {
    let external_id = body
        .external_id
        .as_deref()
        .map(valid_external_id)
        .transpose()?;
    let name = match body.name {
        Some(Some(name)) => Some(Some(valid_name(&name)?)),
        Some(None) => Some(None),
        None => None,
    };
    let metadata = body.metadata.map(valid_metadata).transpose()?;
    let limits = body.limits.map(valid_limits).transpose()?;
    let current = load_identity(&state, &caller, &id).await?;
    let mut next = current.clone();
    if let Some(external_id) = external_id {
        next.external_id = external_id;
    }
    if let Some(name) = name {
        next.name = name;
    }
    if let Some(metadata) = metadata {
        next.metadata = metadata;
    }
    if let Some(limits) = limits {
        next.limits = limits;
    }
    let now = state.clock.now();
    next.updated_at = now;
    let entry = audit::entry(
        &caller,
        &origin,
        "identity.update",
        "identity",
        &id,
        audit::diff(&to_json(&current), &to_json(&next)),
        now,
    );
    let saved = state
        .store
        .save_identity(&next, &entry)
        .await
        .map_err(ApiError::store_lookup("identity"))?;
    state.changed(Change::Identity(saved.id.clone())).await;
    Ok(Json(saved))
}

/// Delete an identity that no key belongs to any more (`identity_has_keys` otherwise).
#[utoipa::path(delete, path = "/v1/identities/{id}", tag = "identities",
    params(("id" = String, Path, description = "The identity's id (`idt_…`); any other id is not found.", pattern = r"^idt_[A-Za-z0-9]{1,64}$")),
    responses((status = 204, description = "The identity is deleted.")))]
pub async fn delete_identity(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let current = load_identity(&state, &caller, &id).await?;
    let now = state.clock.now();
    let entry = audit::entry(
        &caller,
        &origin,
        "identity.delete",
        "identity",
        &id,
        audit::diff(&to_json(&current), &Value::Null),
        now,
    );
    state
        .store
        .delete_identity(&caller.workspace.id, &id, &entry)
        .await
        .map_err(ApiError::store_lookup("identity"))?;
    state.changed(Change::Identity(id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// 1–255 characters, none of them control characters; kept exactly as sent (an id is
/// compared, not displayed).
fn valid_external_id(text: &str) -> Result<String, ApiError> {
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_EXTERNAL_ID_CHARS {
        return Err(ApiError::invalid(format!(
            "external_id must be 1–{MAX_EXTERNAL_ID_CHARS} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "external_id must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

fn to_json(identity: &Identity) -> Value {
    serde_json::to_value(identity).unwrap_or(Value::Null)
}
