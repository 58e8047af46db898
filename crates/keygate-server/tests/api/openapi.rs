//! The served OpenAPI document and the router agree: every documented path and method is
//! served (an unauthenticated call gets 401 or an answer, never "no such endpoint").

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::TestApp;

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20);
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().expect("operations") {
            if operation.get("x-keygate-requires").is_some() {
                // Served only when the gateway is configured; the gateway tests cover them.
                continue;
            }
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
}
