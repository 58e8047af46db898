//! `GET /openapi.json` and `GET /docs`: the API described for client generators, contract
//! testers and people — generated from the code, never written by hand.
//!
//! The document is assembled from the router's table (`routes::operations`): each row's
//! handler carries a `#[utoipa::path]` with its method, path, parameters and bodies, whose
//! schemas are the `keygate-api` types the handler really reads and writes. What is the same
//! for every operation is added here once, from the row: the security scheme (management
//! token; the AI endpoints take a customer key), the roles allowed, the `Idempotency-Key`
//! header on POSTs, and the error answers each kind of operation can give, all with the one
//! error schema. `/docs` renders the document with RapiDoc, vendored into the binary (no CDN),
//! under a strict content security policy.

use std::sync::Arc;

use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use keygate_api::error::ErrorResponse;
use serde_json::{json, Map, Value};
use utoipa::openapi::OpenApi;
use utoipa::ToSchema;

use crate::gateway::Gateway;
use crate::routes::table::{Row, Verb};
use crate::state::AppState;

/// The generated document, serialised once at start.
#[derive(Clone)]
pub struct Document {
    json: Arc<String>,
}

const RAPIDOC: &str = include_str!("../../assets/vendor/rapidoc-min.js");
const DOCS_PAGE: &str = include_str!("../../assets/docs.html");

impl Document {
    /// The document for this server: the management API, and the AI endpoints when the
    /// gateway serves them.
    pub(crate) fn build(rows: &[Row], gateway: Option<&Gateway>) -> Document {
        let value = document(rows, gateway);
        Document {
            json: Arc::new(value.to_string()),
        }
    }

    /// `/openapi.json`, `/docs` and the viewer's script.
    pub fn routes(&self) -> Router<AppState> {
        let json = self.json.clone();
        Router::new()
            .route(
                "/openapi.json",
                get(move || {
                    let json = json.clone();
                    async move { ([(CONTENT_TYPE, "application/json")], json.as_str().to_owned()) }
                }),
            )
            .route(
                "/docs",
                get(|| async {
                    (
                        [
                            (CONTENT_TYPE, "text/html; charset=utf-8"),
                            (
                                CONTENT_SECURITY_POLICY,
                                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
                            ),
                        ],
                        DOCS_PAGE,
                    )
                        .into_response()
                }),
            )
            .route(
                "/docs/rapidoc-min.js",
                get(|| async {
                    (
                        [(CONTENT_TYPE, "text/javascript; charset=utf-8")],
                        RAPIDOC,
                    )
                }),
            )
    }
}

/// The whole document as JSON.
pub(crate) fn document(rows: &[Row], gateway: Option<&Gateway>) -> Value {
    let mut api = OpenApi::default();
    api.info.title = "Keygate".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(
        "API keys issued once, stored hashed, verified, limited and metered. Management calls \
         take a member's token as `Authorization: Bearer kgm_…`; the roles each operation \
         admits are listed in its description. Every response carries `request-id`; every \
         error is `{\"error\":{\"code\",\"message\",\"request_id\"}}`."
            .into(),
    );
    let mut schemas: Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )> = vec![(
        ErrorResponse::name().into_owned(),
        <ErrorResponse as utoipa::PartialSchema>::schema(),
    )];
    ErrorResponse::schemas(&mut schemas);
    for row in rows {
        for (path, item) in &row.paths.paths {
            api.paths
                .paths
                .insert(path.clone(), merged(&api, path, item));
        }
        schemas.extend(row.schemas.iter().cloned());
    }
    if let Some(gateway) = gateway {
        crate::gateway::document(gateway, &mut api, &mut schemas);
    }
    let mut components = utoipa::openapi::Components::new();
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    api.components = Some(components);

    let mut doc = serde_json::to_value(&api).unwrap_or_else(|_| json!({}));
    doc["openapi"] = json!("3.1.0");
    doc["components"]["securitySchemes"] = json!({
        "management_token": {
            "type": "http", "scheme": "bearer",
            "description": "A member's management token (`kgm_mgmt_…`)."
        },
        "customer_key": {
            "type": "http", "scheme": "bearer",
            "description": "A Keygate API key (also accepted as `x-api-key`)."
        }
    });
    let access: Vec<(String, Verb, String)> = rows
        .iter()
        .map(|row| {
            let roles: Vec<&str> = row
                .operation
                .access
                .roles()
                .into_iter()
                .map(|r| r.as_str())
                .collect();
            (
                row.operation.path.clone(),
                row.operation.verb,
                roles.join(", "),
            )
        })
        .collect();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                let roles = access
                    .iter()
                    .find(|(p, verb, _)| {
                        p == path && verb.method().as_str().eq_ignore_ascii_case(method)
                    })
                    .map(|(_, _, roles)| roles.clone());
                complete(method, operation, roles.as_deref());
                if OPTIONAL_BODIES.contains(&(method.as_str(), path.as_str())) {
                    if let Some(body) = operation.get_mut("requestBody") {
                        body["required"] = json!(false);
                    }
                }
            }
        }
    }
    close_request_bodies(&mut doc);
    doc
}

/// Marks every object schema a management request body reaches `additionalProperties:
/// false`, because `ApiJson` refuses unknown fields at any depth. The wire types themselves
/// accept unknown fields (so the CLI can read a newer server's answers), which is why utoipa
/// cannot see this from `deny_unknown_fields`. Answers that share a schema with a request
/// (a key's `limits`) are described closed too: that is what this server sends. The AI
/// endpoints' bodies stay open: they pass the provider's parameters through.
fn close_request_bodies(doc: &mut Value) {
    let mut reached: Vec<String> = Vec::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for operation in paths.values_mut().filter_map(Value::as_object_mut) {
            for operation in operation.values_mut() {
                if operation.get("x-keygate-roles").is_none() {
                    continue;
                }
                if let Some(schema) =
                    operation.pointer_mut("/requestBody/content/application~1json/schema")
                {
                    close(schema, &mut reached);
                }
            }
        }
    }
    let mut done = 0;
    while done < reached.len() {
        let name = reached[done].clone();
        done += 1;
        let mut found = Vec::new();
        if let Some(schema) = doc["components"]["schemas"].get_mut(&name) {
            close(schema, &mut found);
        }
        for name in found {
            if !reached.contains(&name) {
                reached.push(name);
            }
        }
    }
}

/// Closes `schema` and the inline object schemas under it; the components it refers to are
/// added to `refs` for the caller to close. Members of an `allOf` are left open: closing one
/// would refuse the others' fields.
fn close(schema: &mut Value, refs: &mut Vec<String>) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(name) = object
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        refs.push(name.to_owned());
        return;
    }
    if object.contains_key("properties") && !object.contains_key("additionalProperties") {
        object.insert("additionalProperties".into(), json!(false));
    }
    if let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) {
        for property in properties.values_mut() {
            close(property, refs);
        }
    }
    if let Some(items) = object.get_mut("items") {
        close(items, refs);
    }
    for choice in ["oneOf", "anyOf"] {
        if let Some(choices) = object.get_mut(choice).and_then(Value::as_array_mut) {
            for schema in choices {
                close(schema, refs);
            }
        }
    }
}

/// Operations whose handler also accepts no body at all (or an empty one), as (method, path).
/// Every other documented body is required: `ApiJson` refuses an absent one. Operations that
/// take no body (disable, enable, revoke, regenerate, release) document none and ignore one.
const OPTIONAL_BODIES: &[(&str, &str)] = &[("post", "/v1/keys/{id}/rotate")];

/// A path's item with `item`'s operations added (two rows may share a path).
fn merged(
    api: &OpenApi,
    path: &str,
    item: &utoipa::openapi::path::PathItem,
) -> utoipa::openapi::path::PathItem {
    let mut merged = api.paths.paths.get(path).cloned().unwrap_or_default();
    merged.get = merged.get.or_else(|| item.get.clone());
    merged.post = merged.post.or_else(|| item.post.clone());
    merged.patch = merged.patch.or_else(|| item.patch.clone());
    merged.delete = merged.delete.or_else(|| item.delete.clone());
    merged.put = merged.put.or_else(|| item.put.clone());
    merged
}

/// What every operation of its kind has: security, roles, idempotency, error answers.
fn complete(method: &str, operation: &mut Value, roles: Option<&str>) {
    let Some(op) = operation.as_object_mut() else {
        return;
    };
    let customer = roles.is_none();
    op.insert(
        "security".into(),
        json!([{ if customer { "customer_key" } else { "management_token" }: [] }]),
    );
    if let Some(roles) = roles {
        let text = op
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let sep = if text.is_empty() { "" } else { "\n\n" };
        op.insert(
            "description".into(),
            json!(format!("{text}{sep}Roles: {roles}.")),
        );
        op.insert(
            "x-keygate-roles".into(),
            json!(roles.split(", ").collect::<Vec<_>>()),
        );
    }
    let has_body = op.contains_key("requestBody");
    if method == "post" && !customer {
        let params = op.entry("parameters").or_insert_with(|| json!([]));
        if let Some(params) = params.as_array_mut() {
            params.push(json!({
                "name": "Idempotency-Key", "in": "header", "required": false,
                "description": "Makes a retry safe: the same key with the same request returns the first answer (`idempotent-replayed: true`) and has no second effect; with another request it is refused (422). Remembered 24 hours, per member.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}
            }));
        }
    }
    let responses = op.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else {
        return;
    };
    let mut errors: Vec<(&str, &str)> = vec![
        (
            "400",
            "The request is not valid: a parameter or a field names what is wrong.",
        ),
        (
            "401",
            if customer {
                "The key is missing, malformed, unknown, revoked, disabled or expired."
            } else {
                "The management token is missing, malformed or unknown."
            },
        ),
        (
            "403",
            if customer {
                "The key may not make this request."
            } else {
                "The member's role does not allow this operation."
            },
        ),
        (
            "500",
            "Keygate failed; the cause is logged under the request id.",
        ),
        // The limiter answers for verify, reservations, settle, release, usage reports and a
        // key's limits; a backend every operation needs may be unavailable too. Documented on
        // every operation, so a client handles it (and a contract test expects it) anywhere.
        (
            "503",
            "A backend Keygate needs is unavailable: the limiter (`limiter_unavailable`, Keygate fails closed) or the database (`store_unavailable`); retry after `Retry-After` seconds.",
        ),
    ];
    // An id in the path that names nothing in this workspace (another workspace's ids
    // answer the same).
    errors.push((
        "404",
        "No such id in this workspace; another workspace's ids answer the same.",
    ));
    if has_body {
        errors.push(("413", "The body is larger than the limit."));
        errors.push(("415", "The body is not `application/json`."));
    }
    if method == "post" && !customer {
        errors.push(("409", "A conflict with the workspace's state: a name in use, a concurrent change, a duplicate request still in progress, or a reference (`scope` project, `routing_rule_id`, `keygate-ratelimit-policy`) to something that does not exist (`unknown_reference`)."));
        errors.push((
            "422",
            "The Idempotency-Key was used for a different request.",
        ));
    }
    if method == "patch" || method == "delete" {
        errors.push((
            "409",
            "A conflict with the current state: a name in use, a concurrent change, or a reference to something that does not exist (`unknown_reference`).",
        ));
    }
    if customer {
        errors.push((
            "409",
            "The rate-limit policy named in `keygate-ratelimit-policy` does not exist (`unknown_reference`).",
        ));
    }
    for (status, description) in errors {
        responses.entry(status).or_insert_with(|| {
            let mut response = json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
            });
            if status == "503" {
                response["headers"] = json!({"Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer", "minimum": 0}
                }});
            }
            response
        });
    }
    for (_, response) in responses.iter_mut() {
        if let Some(response) = response.as_object_mut() {
            let headers = response
                .entry("headers")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(headers) = headers.as_object_mut() {
                headers.insert(
                    "request-id".into(),
                    json!({"description": "This request's id (`req_…`).", "schema": {"type": "string"}}),
                );
            }
        }
    }
}
