//! `/v1/routing-rules`: how the AI gateway routes a key's requests. The rule itself travels as
//! keygate-core's [`RoutingRule`].
//!
//! A rule's fields are checked together (`keygate_core::routing::validate_targets`): in
//! `split` mode every weight must be at least 1, which no one field's schema can say. The
//! request schemas therefore add that condition on the whole body ([`CreateRoutingRuleBody`],
//! [`UpdateRoutingRuleBody`]); [`constrain`] is how more such conditions are added (the AI
//! gateway adds the providers and priced models its config allows).

use keygate_core::text::{Description, Name};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

pub use keygate_core::routing::{RoutingMode, RoutingRule, RoutingTarget};

/// Most targets one rule holds.
pub const MAX_TARGETS: usize = 16;

// Documented as `CreateRoutingRuleBody`, which adds the condition on `split` weights.
/// A new routing rule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = CreateRoutingRuleFields)]
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

// Documented as `UpdateRoutingRuleBody`, which adds the condition on `split` weights.
/// A change to a routing rule: only the fields sent change (`null` leaves a field as it is,
/// except `description`, where it removes the description).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = UpdateRoutingRuleFields)]
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

/// Every weight at least 1, for the `targets` of a body.
fn weights_at_least_one() -> Value {
    json!({"properties": {"targets": {"items": {"properties": {"weight": {"minimum": 1}}}}}})
}

/// The schema of `POST /v1/routing-rules`' body: [`CreateRoutingRule`]'s fields, and in
/// `split` mode every weight at least 1.
pub struct CreateRoutingRuleBody;

impl PartialSchema for CreateRoutingRuleBody {
    fn schema() -> RefOr<Schema> {
        let mut schema = CreateRoutingRule::schema();
        constrain(
            &mut schema,
            json!({
                "if": {"properties": {"mode": {"const": "split"}}},
                "then": weights_at_least_one()
            }),
        );
        set_example(
            &mut schema,
            json!({
                "name": "chat",
                "description": "OpenAI first, Azure when it fails.",
                "mode": "fallback",
                "targets": [
                    {"provider": "openai"},
                    {"provider": "azure", "models": {"gpt-4o": "gpt-4o-eu"}}
                ],
                "default": true
            }),
        );
        schema
    }
}

impl ToSchema for CreateRoutingRuleBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "CreateRoutingRule".into()
    }
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        CreateRoutingRule::schemas(schemas);
    }
}

/// The schema of `PATCH /v1/routing-rules/{id}`'s body: [`UpdateRoutingRule`]'s fields, and
/// every weight at least 1 unless the body sets `mode` to `fallback`. (The server checks the
/// weights against the mode the rule will have, which may be the stored one, so a body that
/// sends weights of 0 without `"mode": "fallback"` to a fallback rule is accepted although
/// this schema refuses it: the schema is the stricter of the two.)
pub struct UpdateRoutingRuleBody;

impl PartialSchema for UpdateRoutingRuleBody {
    fn schema() -> RefOr<Schema> {
        let mut schema = UpdateRoutingRule::schema();
        constrain(
            &mut schema,
            json!({
                "if": {"required": ["mode"], "properties": {"mode": {"const": "fallback"}}},
                "else": weights_at_least_one()
            }),
        );
        set_example(
            &mut schema,
            json!({"mode": "split", "targets": [
                {"provider": "openai", "weight": 70},
                {"provider": "azure", "weight": 30}
            ]}),
        );
        schema
    }
}

impl ToSchema for UpdateRoutingRuleBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "UpdateRoutingRule".into()
    }
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        UpdateRoutingRule::schemas(schemas);
    }
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

fn set_example(schema: &mut RefOr<Schema>, example: Value) {
    if let RefOr::T(Schema::Object(object)) = schema {
        object.example = Some(example);
    }
}
