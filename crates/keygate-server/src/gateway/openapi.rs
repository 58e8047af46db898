//! The AI gateway in `/openapi.json`: its endpoints as their handlers' `#[utoipa::path]`
//! declare them, the error answers only the gateway gives, and — because what a routing rule
//! may name depends on this server's `[ai]` config — routing rules narrowed to the providers
//! and priced models the config has.
//!
//! Security is not set here: `routes::openapi` marks every operation without a role (these)
//! as taking a customer's key.

use keygate_api::ai::{GatewayError, ProviderAnswer};
use keygate_api::error::ErrorResponse;
use keygate_api::routing::constrain;
use keygate_core::routing::MAX_PROVIDER_CHARS;
use serde_json::{json, Value};
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::UtoipaMethodRouter;

use super::config::AiConfig;
use crate::state::AppState;

type Schemas = Vec<(String, RefOr<Schema>)>;

/// What an AI request that is forwarded can be answered with besides the provider's success.
/// Each may also be the provider's own answer with that status, passed through.
const FORWARD_ERRORS: [(&str, &str); 11] = [
    ("400", "The body is not a JSON object, `model` is missing, a bound is not a whole number of at least 1, a content part cannot be bounded before sending, or `keygate-ratelimit-policy` names no policy of the workspace."),
    ("401", "The key is missing, malformed, unknown, revoked, disabled or expired."),
    ("402", "The key's daily spend cap or the workspace's credit cannot cover the request's worst case."),
    ("403", "The key may not use the AI gateway (another workspace, project or permissions)."),
    ("404", "No configured provider serves the model at a price (`model_not_found`)."),
    ("413", "The body is larger than the gateway accepts."),
    ("429", "A rate window, or the key's token or cost budget, cannot take the request; `retry-after` says when to retry."),
    ("500", "Keygate failed; the cause is logged under the request id."),
    ("502", "No provider could be reached, or the connection to it broke."),
    ("503", "The limiter cannot be reached: Keygate fails closed (`retry-after: 1`)."),
    ("504", "The provider did not answer in time."),
];

/// What `GET /v1/models` can be answered with besides the list (Keygate's own answers only).
const MODELS_ERRORS: [(&str, &str); 7] = [
    (
        "400",
        "`keygate-ratelimit-policy` names no policy of the workspace.",
    ),
    (
        "401",
        "The key is missing, malformed, unknown, revoked, disabled or expired.",
    ),
    (
        "402",
        "The key's daily spend cap or the workspace's credit is used up.",
    ),
    (
        "403",
        "The key may not use the AI gateway (another workspace, project or permissions).",
    ),
    (
        "429",
        "A rate window is full; `retry-after` says when to retry.",
    ),
    (
        "500",
        "Keygate failed; the cause is logged under the request id.",
    ),
    (
        "503",
        "The limiter cannot be reached: Keygate fails closed (`retry-after: 1`).",
    ),
];

pub(super) fn document(
    ai: &AiConfig,
    endpoints: [UtoipaMethodRouter<AppState>; 4],
    api: &mut OpenApi,
    schemas: &mut Schemas,
) {
    for (endpoint_schemas, paths, _) in endpoints {
        for (path, mut item) in paths.paths {
            if let Some(operation) = item.post.as_mut() {
                add_errors(operation, &FORWARD_ERRORS, GatewayError::name().as_ref());
                operation.responses.responses.insert(
                    "default".into(),
                    RefOr::T(
                        ResponseBuilder::new()
                            .description("Any other status the provider answered with, passed through with its body.")
                            .content("application/json", json_body(ProviderAnswer::name().as_ref()))
                            .build(),
                    ),
                );
            }
            if let Some(operation) = item.get.as_mut() {
                add_errors(operation, &MODELS_ERRORS, ErrorResponse::name().as_ref());
            }
            api.paths.paths.insert(path, item);
        }
        schemas.extend(endpoint_schemas);
    }
    for (name, schema) in [
        (GatewayError::name(), GatewayError::schema()),
        (ProviderAnswer::name(), ProviderAnswer::schema()),
    ] {
        schemas.push((name.into_owned(), schema));
    }
    GatewayError::schemas(schemas);
    served_examples(ai, schemas);
    narrow_routing_rules(ai, schemas);
}

fn json_body(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

fn add_errors(operation: &mut Operation, errors: &[(&str, &str)], schema: &str) {
    for (status, description) in errors {
        operation
            .responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content("application/json", json_body(schema))
                        .build(),
                )
            });
    }
}

/// The schema named `name` in `schemas`, every copy (the document keeps the first).
fn named<'a>(
    schemas: &'a mut Schemas,
    name: &'a str,
) -> impl Iterator<Item = &'a mut RefOr<Schema>> {
    schemas
        .iter_mut()
        .filter(move |(n, _)| n == name)
        .map(|(_, schema)| schema)
}

/// The AI request examples name a model this server serves, so they can be sent as they are.
fn served_examples(ai: &AiConfig, schemas: &mut Schemas) {
    let models: Vec<&str> = ai.models().into_iter().map(|(model, _)| model).collect();
    let embedding = models
        .iter()
        .find(|m| m.contains("embed"))
        .or(models.first());
    let generating = models
        .iter()
        .find(|m| !m.contains("embed"))
        .or(models.first());
    for (name, model) in [
        ("ChatCompletionRequest", generating),
        ("CompletionRequest", generating),
        ("EmbeddingRequest", embedding),
    ] {
        let Some(model) = model else { continue };
        for schema in named(schemas, name) {
            if let RefOr::T(Schema::Object(object)) = schema {
                let example = object
                    .extensions
                    .as_mut()
                    .and_then(|keywords| keywords.get_mut("example"));
                if let Some(Value::Object(example)) = example {
                    example.insert("model".into(), json!(model));
                }
            }
        }
    }
}

/// With `[ai]` configured, a rule may name only configured providers (each once) and map
/// models only to priced ones (`routes::routing_rules::check_targets`): the request schemas
/// say so with this config's names, and their examples use them.
fn narrow_routing_rules(ai: &AiConfig, schemas: &mut Schemas) {
    let mut providers: Vec<&str> = ai
        .providers
        .iter()
        .map(|p| p.name.as_str())
        .filter(|name| !name.trim().is_empty() && name.chars().count() <= MAX_PROVIDER_CHARS)
        .collect();
    providers.dedup();
    let mut priced: Vec<&str> = ai
        .prices
        .keys()
        .map(String::as_str)
        .filter(|model| !model.is_empty() && model.chars().count() <= 200)
        .collect();
    priced.sort_unstable();
    let one_of = |names: &[&str]| {
        if names.is_empty() {
            json!({"not": {}})
        } else {
            json!({"enum": names})
        }
    };
    let once: Vec<Value> = providers
        .iter()
        .map(|p| json!({"contains": {"properties": {"provider": {"const": p}}}, "minContains": 0, "maxContains": 1}))
        .collect();
    let condition = json!({"properties": {"targets": {
        "items": {"properties": {
            "provider": one_of(&providers),
            "models": {"additionalProperties": one_of(&priced)}
        }},
        "allOf": once
    }}});
    let first = providers.first().copied().unwrap_or("openai");
    let second = providers.get(1).copied();
    let mut create_targets = vec![json!({"provider": first})];
    let mut split_targets = vec![json!({"provider": first, "weight": 70})];
    if let Some(second) = second {
        create_targets.push(json!({"provider": second}));
        split_targets.push(json!({"provider": second, "weight": 30}));
    }
    let examples = [
        (
            "CreateRoutingRule",
            json!({"name": "chat", "description": "The first provider, then the next when it fails.", "mode": "fallback", "targets": create_targets, "default": true}),
        ),
        (
            "UpdateRoutingRule",
            json!({"mode": "split", "targets": split_targets}),
        ),
    ];
    for (name, example) in examples {
        for schema in named(schemas, name) {
            constrain(schema, condition.clone());
            if let RefOr::T(Schema::Object(object)) = schema {
                object.example = Some(example.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_and_the_router_serve_exactly_the_ai_paths() {
        let mut served: Vec<String> = super::super::ai_endpoints()
            .into_iter()
            .flat_map(|(_, paths, _)| paths.paths.into_keys())
            .collect();
        served.sort();
        let mut expected: Vec<String> = super::super::AI_PATHS.map(String::from).to_vec();
        expected.sort();
        assert_eq!(served, expected);
    }
}
