//! `/v1/projects`: the projects keys can be scoped to.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/projects`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "billing"}))]
pub struct CreateProject {
    /// 1–100 characters, no control characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}
