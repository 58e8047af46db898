//! `/v1/projects`: the projects keys can be scoped to.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use keygate_api::projects::CreateProject;
use keygate_api::Items;
use keygate_core::ids;
use keygate_core::model::Project;
use serde_json::json;

use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::routes::common::valid_name;
use crate::state::AppState;

/// Create a project keys can be scoped to.
#[utoipa::path(post, path = "/v1/projects", tag = "projects",
    request_body = CreateProject,
    responses((status = 201, description = "The new project.", body = Project)))]
pub async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<impl IntoResponse, ApiError> {
    let now = state.clock.now();
    let project = Project {
        id: ids::new_id("proj"),
        workspace_id: caller.workspace.id.clone(),
        name: valid_name(&body.name)?,
        created_at: now,
    };
    let entry = audit::entry(
        &caller,
        &origin,
        "project.create",
        "project",
        &project.id,
        json!({"name": {"before": null, "after": project.name}}),
        now,
    );
    state.store.create_project(&project, &entry).await?;
    Ok((StatusCode::CREATED, Json(project)))
}

/// Every project of the workspace.
#[utoipa::path(get, path = "/v1/projects", tag = "projects",
    responses((status = 200, description = "The projects.", body = Items<Project>)))]
pub async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Items<Project>>, ApiError> {
    let items = state.store.list_projects(&caller.workspace.id).await?;
    Ok(Json(Items { items }))
}

/// One project.
#[utoipa::path(get, path = "/v1/projects/{id}", tag = "projects",
    params(("id" = String, Path, description = "The project's id (`proj_…`).")),
    responses((status = 200, description = "The project.", body = Project)))]
pub async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Project>, ApiError> {
    if !ids::looks_like("proj", &id) {
        return Err(ApiError::NotFound("project"));
    }
    state
        .store
        .project(&caller.workspace.id, &id)
        .await
        .map(Json)
        .map_err(ApiError::store_lookup("project"))
}
