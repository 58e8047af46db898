//! `/v1/routing-rules`: how the AI gateway routes a key's requests. The rule itself travels as
//! keygate-core's [`RoutingRule`].
//!
//! Every rule the server checks on a target (`keygate_core::routing::validate_targets`) is said
//! on the target's own fields, so a body's schema never depends on the rule's stored mode.
//! [`constrain`] adds conditions on a whole body where a field's schema cannot say them: the
//! AI gateway narrows providers and models to those its config allows, and key bodies allow
//! only one of `expires_in` and `expires_at`.

use keygate_core::text::{Description, Name};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

pub use keygate_core::routing::{RoutingMode, RoutingRule, RoutingTarget};

/// Most targets one rule holds.
pub const MAX_TARGETS: usize = 16;

/// A new routing rule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "chat",
    "description": "OpenAI first, Azure when it fails.",
    "mode": "fallback",
    "targets": [
        {"provider": "openai"},
        {"provider": "azure", "models": {"gpt-4o": "gpt-4o-eu"}}
    ],
    "default": true
}))]
pub struct CreateRoutingRule {
    #[schema(value_type = Name)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Description>)]
    pub description: Option<String>,
    pub mode: RoutingMode,
    /// 1 to 16 targets, each provider at most once.
    #[schema(min_items = 1, max_items = 16)]
    pub targets: Vec<RoutingTarget>,
    /// Makes this the workspace's default rule (the previous default stops being one).
    #[serde(default)]
    pub default: bool,
}

/// A change to a routing rule: only the fields sent change (`null` leaves a field as it is,
/// except `description`, where it removes the description).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"mode": "split", "targets": [
    {"provider": "openai", "weight": 70},
    {"provider": "azure", "weight": 30}
]}))]
pub struct UpdateRoutingRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Name>)]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Description>)]
    pub description: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<RoutingMode>,
    /// Replaces every target: 1 to 16, each provider at most once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 16)]
    pub targets: Option<Vec<RoutingTarget>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
}

/// Adds `condition` to an object schema: the body must satisfy it as well as the schema's own
/// properties (kept in an `allOf`, so conditions added by different callers never replace
/// each other).
pub fn constrain(schema: &mut RefOr<Schema>, condition: Value) {
    let RefOr::T(Schema::Object(object)) = schema else {
        return;
    };
    let extensions = object.extensions.get_or_insert_with(Default::default);
    match extensions.get_mut("allOf").and_then(Value::as_array_mut) {
        Some(all) => all.push(condition),
        None => {
            extensions.insert("allOf".into(), Value::Array(vec![condition]));
        }
    }
}
