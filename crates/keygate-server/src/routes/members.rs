//! `/v1/members`: who can manage the workspace. Owners only: a member list is as sensitive
//! as the keys it controls.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use keygate_api::members::{CreateMember, CreatedMember};
use keygate_api::Items;
use keygate_core::ids;
use keygate_core::model::Member;
use keygate_store::NewMember;
use serde_json::json;

use crate::audit::{self, Origin};
use crate::auth::{generate_token, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::invalidation::Change;
use crate::routes::common::valid_name;
use crate::state::AppState;
use keygate_api::error::ErrorCode;

/// Add a member with a role; the answer holds their management token, shown only this once.
#[utoipa::path(post, path = "/v1/members", tag = "members",
    request_body = CreateMember,
    responses((status = 201, description = "The new member and their token.", body = CreatedMember)))]
pub async fn create_member(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiJson(body): ApiJson<CreateMember>,
) -> Result<impl IntoResponse, ApiError> {
    let now = state.clock.now();
    let token = generate_token();
    let member = Member {
        id: ids::new_id("mem"),
        workspace_id: caller.workspace.id.clone(),
        name: valid_name(&body.name)?,
        role: body.role,
        token_display: token.display(),
        created_at: now,
    };
    let entry = audit::entry(
        &caller,
        &origin,
        "member.create",
        "member",
        &member.id,
        json!({
            "name": {"before": null, "after": member.name},
            "role": {"before": null, "after": member.role},
        }),
        now,
    );
    let new = NewMember {
        member: member.clone(),
        token_hash: state.secret.hash_key(&token),
    };
    state.store.create_member(&new, &entry).await?;
    state.members.invalidate(&new.token_hash).await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedMember {
            token: token.expose().to_owned(),
            warning: "Store this token now: it is shown once and cannot be retrieved again."
                .to_owned(),
            member,
        }),
    ))
}

/// Every member of the workspace (tokens are shown only by their display form).
#[utoipa::path(get, path = "/v1/members", tag = "members",
    responses((status = 200, description = "The members.", body = Items<Member>)))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Items<Member>>, ApiError> {
    let items = state.store.list_members(&caller.workspace.id).await?;
    Ok(Json(Items { items }))
}

/// Remove a member; their token stops working at once. The last owner cannot be removed.
#[utoipa::path(delete, path = "/v1/members/{id}", tag = "members",
    params(("id" = String, Path, description = "The member's id (`mem_…`).")),
    responses((status = 204, description = "The member is removed.")))]
pub async fn delete_member(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !ids::looks_like("mem", &id) {
        return Err(ApiError::NotFound("member"));
    }
    if id == caller.member.id {
        // A token that deletes its own member locks its holder out at once (and, for the
        // last writer of a script, the workspace's automation); another owner can do it.
        return Err(ApiError::Conflict {
            code: ErrorCode::CannotRemoveSelf,
            message: "You cannot remove yourself: your token would stop working at once. Ask another owner to remove you.".into(),
        });
    }
    let member = state
        .store
        .member(&caller.workspace.id, &id)
        .await
        .map_err(ApiError::store_lookup("member"))?;
    let entry = audit::entry(
        &caller,
        &origin,
        "member.delete",
        "member",
        &id,
        json!({
            "name": {"before": member.name, "after": null},
            "role": {"before": member.role, "after": null},
        }),
        state.clock.now(),
    );
    state
        .store
        .delete_member(&caller.workspace.id, &id, &entry)
        .await
        .map_err(ApiError::store_lookup("member"))?;
    state.changed(Change::Member(id)).await;
    Ok(StatusCode::NO_CONTENT)
}
