//! `/v1/projects`: the projects keys can be scoped to.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use keygate_core::text::Name;

/// `POST /v1/projects`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "billing"}))]
pub struct CreateProject {
    #[schema(value_type = Name)]
    pub name: String,
}
