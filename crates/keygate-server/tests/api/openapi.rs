//! `/openapi.json` is generated from the router's table, so the two agree by construction;
//! these tests check the promise from outside: every documented operation is served, every
//! served operation is documented with its security and roles, every example in the document
//! validates against its own schema, and `/docs` renders it from the binary alone.

use keygate_server::routes::access_table;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::TestApp;

async fn document(app: &TestApp) -> Value {
    let response = app.get_anonymous("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("the document is JSON")
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            out.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    assert!(ops.len() >= 35, "{} operations", ops.len());
    for (path, method, _) in ops {
        let url = format!(
            "{}{}",
            app.base,
            path.replace("{id}", "key_doesnotexist")
                .replace("{request_id}", "req_doesnotexist")
        );
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = app
            .client
            .request(method.clone(), url)
            .send()
            .await
            .expect("send");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let no_route = status == StatusCode::METHOD_NOT_ALLOWED
            || (status == StatusCode::NOT_FOUND
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("No such endpoint")));
        assert!(
            !no_route,
            "{method} {path} is documented but not served ({status})"
        );
    }
}

#[tokio::test]
async fn every_served_operation_is_documented_with_its_security_and_roles() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let table = access_table();
    assert_eq!(
        operations(&doc).len(),
        table.len(),
        "without a gateway the document holds exactly the management API"
    );
    for op in table {
        let method = op.verb.method().as_str().to_lowercase();
        let documented = &doc["paths"][&op.path][&method];
        assert!(
            documented.is_object(),
            "{method} {} is served but not documented",
            op.path
        );
        assert_eq!(
            documented["security"],
            json!([{"management_token": []}]),
            "{}",
            op.path
        );
        let roles: Vec<&str> = op.access.roles().into_iter().map(|r| r.as_str()).collect();
        assert_eq!(documented["x-keygate-roles"], json!(roles), "{}", op.path);
        for status in ["401", "403"] {
            assert_eq!(
                documented["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorResponse",
                "{method} {} {status}",
                op.path
            );
        }
        let success = documented["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .any(|status| status.starts_with('2'));
        assert!(success, "{method} {} documents no success answer", op.path);
        if method == "post" {
            let idempotency = documented["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key"));
            assert!(idempotency, "{method} {} lacks Idempotency-Key", op.path);
        }
    }
}

/// Every `example` the document gives (schemas, request and response bodies, parameters)
/// validates against the schema it stands beside, references resolved in the document.
#[tokio::test]
async fn every_example_validates_against_its_own_schema() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut check = |where_: String, schema: &Value, example: &Value| {
        let mut root = schema.clone();
        if let Some(object) = root.as_object_mut() {
            object.insert("components".into(), doc["components"].clone());
        }
        match jsonschema::validator_for(&root) {
            Ok(validator) => {
                if let Err(error) = validator.validate(example) {
                    failures.push(format!("{where_}: {error} (example {example})"));
                }
            }
            Err(error) => failures.push(format!("{where_}: the schema does not compile: {error}")),
        }
        checked += 1;
    };
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        if let Some(example) = schema.get("example") {
            check(format!("schema {name}"), schema, example);
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (field, property) in properties {
                if let Some(example) = property.get("example") {
                    check(format!("schema {name}.{field}"), property, example);
                }
            }
        }
    }
    for (path, method, operation) in operations(&doc) {
        let mut media = Vec::new();
        if let Some(content) = operation["requestBody"]["content"].as_object() {
            media.extend(content.values().cloned());
        }
        if let Some(responses) = operation["responses"].as_object() {
            for response in responses.values() {
                if let Some(content) = response["content"].as_object() {
                    media.extend(content.values().cloned());
                }
            }
        }
        for m in media {
            if let Some(example) = m.get("example") {
                check(format!("{method} {path} body"), &m["schema"], example);
            }
        }
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if let Some(example) = parameter.get("example") {
                check(
                    format!("{method} {path} parameter {}", parameter["name"]),
                    &parameter["schema"],
                    example,
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 5, "only {checked} examples in the document");
}

#[tokio::test]
async fn the_docs_page_renders_the_document_from_the_binary_alone() {
    let app = TestApp::spawn().await;
    let page = app.get_anonymous("/docs").await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains("spec-url=\"/openapi.json\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
    let script = app.get_anonymous("/docs/rapidoc-min.js").await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.text().await.expect("js").len() > 100_000);
}

/// Whether `value` validates against the document's component `name`.
fn valid_as(doc: &Value, name: &str, value: &Value) -> bool {
    let root = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"].clone()
    });
    let validator = jsonschema::validator_for(&root).expect("the schema compiles");
    validator.is_valid(value)
}

/// With `[ai]` configured the document also holds the AI endpoints, exactly
/// `gateway::AI_PATHS`, taking a customer's key; routing rules are narrowed to the config's
/// providers and priced models; and the examples of both are accepted by the server as they
/// are.
#[tokio::test]
async fn the_ai_gateway_is_documented_when_it_serves() {
    let setup = crate::gateway_ai::ai_app().await;
    let app = &setup.app;
    let doc = document(app).await;
    let ops = operations(&doc);
    let ai_paths = keygate_server::gateway::AI_PATHS;
    assert_eq!(ops.len(), access_table().len() + ai_paths.len());
    for path in ai_paths {
        let item = doc["paths"][path].as_object().expect("documented");
        assert_eq!(item.len(), 1, "{path}");
        for (method, op) in item {
            assert_eq!(
                op["security"],
                json!([{"customer_key": []}]),
                "{method} {path}"
            );
            assert!(op.get("x-keygate-roles").is_none(), "{method} {path}");
            assert!(
                op.get("requestBody").is_some() == (method == "post"),
                "{path}"
            );
            for status in ["200", "400", "401", "403", "429", "500", "503"] {
                assert!(
                    op["responses"][status]["content"].is_object(),
                    "{method} {path} {status}"
                );
            }
        }
    }

    let schemas = &doc["components"]["schemas"];
    for name in [
        "ChatCompletionRequest",
        "CompletionRequest",
        "EmbeddingRequest",
    ] {
        let example = &schemas[name]["example"];
        assert!(valid_as(&doc, name, example), "{name} example {example}");
    }
    let chat = |body: Value| valid_as(&doc, "ChatCompletionRequest", &body);
    assert!(chat(
        json!({"model": "gpt-test", "temperature": 0.2, "n": null})
    ));
    assert!(!chat(json!({"messages": []})), "model is required");
    assert!(!chat(json!({"model": "gpt-test", "max_tokens": 0})));
    assert!(!chat(
        json!({"model": "gpt-test", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]})
    ));
    let completion = |body: Value| valid_as(&doc, "CompletionRequest", &body);
    assert!(completion(
        json!({"model": "m", "prompt": [[1, 2], "three"]})
    ));
    assert!(!completion(json!({"model": "m", "prompt": [1, "two"]})));

    let rule = |body: Value| valid_as(&doc, "CreateRoutingRule", &body);
    let target = |provider: &str| json!({"provider": provider});
    let create = &schemas["CreateRoutingRule"]["example"];
    assert!(rule(create.clone()), "CreateRoutingRule example {create}");
    assert!(!rule(
        json!({"name": "r", "mode": "fallback", "targets": [target("nowhere")]})
    ));
    assert!(!rule(
        json!({"name": "r", "mode": "fallback", "targets": [target("alpha"), {"provider": "alpha", "weight": 2}]})
    ));
    assert!(!rule(
        json!({"name": "r", "mode": "split", "targets": [{"provider": "alpha", "weight": 0}]})
    ));
    // At least 1 in every mode: the schema of a PATCH cannot know the rule's stored mode.
    assert!(!rule(
        json!({"name": "r", "mode": "fallback", "targets": [{"provider": "alpha", "weight": 0}]})
    ));
    assert!(!valid_as(
        &doc,
        "UpdateRoutingRule",
        &json!({"targets": [{"provider": "alpha", "weight": 0}]})
    ));
    assert!(!rule(
        json!({"name": "r", "mode": "fallback", "targets": [{"provider": "alpha", "models": {"gpt-test": "unpriced"}}]})
    ));
    let update = &schemas["UpdateRoutingRule"]["example"];
    assert!(
        valid_as(&doc, "UpdateRoutingRule", update),
        "UpdateRoutingRule example {update}"
    );

    // The examples, sent as they are.
    let created = app.owner_create("/v1/routing-rules", create.clone()).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let updated = app
        .owner_patch(&format!("/v1/routing-rules/{id}"), update.clone())
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let (_, secret) = app.new_key("documented").await;
    let answer = crate::gateway_ai::chat(
        app,
        &secret,
        schemas["ChatCompletionRequest"]["example"].clone(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

/// The server refuses unknown request fields at any depth (`ApiJson`), while the wire types
/// accept them for the CLI's sake; the document says what the server does: every object a
/// management request body reaches is closed, and the AI bodies, which pass provider
/// parameters through, stay open.
#[tokio::test]
async fn request_bodies_are_closed_at_every_depth() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    for name in [
        "CreateKey",
        "UpdateKey",
        "KeyLimits",
        "RateWindow",
        "TokenLimit",
        "CostLimit",
        "VerifyRequest",
    ] {
        assert_eq!(
            schemas[name]["additionalProperties"],
            json!(false),
            "{name}: {}",
            schemas[name]
        );
    }
    assert!(!valid_as(
        &doc,
        "CreateKey",
        &json!({"name": "x", "limits": {"colour": "red"}})
    ));
    assert!(valid_as(
        &doc,
        "CreateKey",
        &json!({"name": "x", "limits": {"rate_limits": [{"limit": 5, "window": "1m"}]}})
    ));

    let setup = crate::gateway_ai::ai_app().await;
    let doc = document(&setup.app).await;
    assert!(valid_as(
        &doc,
        "ChatCompletionRequest",
        &json!({"model": "gpt-test", "a_provider_parameter": true})
    ));
}
