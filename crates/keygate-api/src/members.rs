//! `/v1/members`: who can manage the workspace (owners only).

use keygate_core::model::{Member, Role};
use keygate_core::text::Name;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A new member of the workspace.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "ci deploy", "role": "service"}))]
pub struct CreateMember {
    #[schema(value_type = Name)]
    pub name: String,
    pub role: Role,
}

/// A new member with their management token, which is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedMember {
    /// The management token (`kgm_mgmt_…`), for `Authorization: Bearer`. Only its hash is
    /// kept: it cannot be shown again.
    pub token: String,
    /// A reminder to store the token now.
    pub warning: String,
    #[serde(flatten)]
    pub member: Member,
}
