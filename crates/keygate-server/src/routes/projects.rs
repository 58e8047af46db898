//! `/v1/projects`: the projects keys can be scoped to.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use keygate_core::ids;
use keygate_core::model::Project;
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::routes::keys::valid_name;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    name: String,
}

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

pub async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let projects = state.store.list_projects(&caller.workspace.id).await?;
    Ok(Json(json!({ "items": projects })))
}

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
