//! `/v1/identities`: the customers who hold keys. An identity has the same kinds of limits a
//! key has, counted once for all its keys and checked with each key's, all or nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use keygate_core::model::Identity;
use keygate_core::text::Name;

use crate::KeyLimits;

/// `POST /v1/identities`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"external_id": "cus_8812", "name": "Acme Corp", "limits": {"rate_limits": [{"limit": 600, "window": "1m"}]}}))]
pub struct CreateIdentity {
    /// Your id for this customer: 1–255 characters, no control characters, unique in the
    /// workspace.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
        example = "cus_8812"
    )]
    pub external_id: String,
    /// A name shown in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Name>)]
    pub name: Option<String>,
    /// Free-form JSON object (at most 16 KiB).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Limits counted over all the identity's keys. At most 10 rate windows, each with a
    /// limit of at least 1.
    #[serde(default, skip_serializing_if = "KeyLimits::is_empty")]
    pub limits: KeyLimits,
}

/// `PATCH /v1/identities/{id}`: only the fields given change; `name: null` removes the name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"limits": {"token_limit": {"limit": 1000000, "reset": "monthly"}}}))]
pub struct UpdateIdentity {
    /// A new external id, unique in the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub external_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Name>)]
    pub name: Option<Option<String>>,
    /// New metadata, replacing the current object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// New limits, replacing the current ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<KeyLimits>,
}

/// `GET /v1/identities`: the page to read, or the one identity with an external id.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListIdentities {
    /// Only the identity with this external id (at most one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub external_id: Option<String>,
    /// Identities per page, 1–500; default 50.
    #[param(minimum = 1, maximum = 500)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^-?[0-9]{1,18}\.[A-Za-z0-9_]{1,80}$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A page of identities, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IdentityPage {
    pub items: Vec<Identity>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
