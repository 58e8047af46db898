//! `GET /openapi.json`: the management API described for client generators and schemathesis.
//!
//! The document is written by hand next to the routes (`openapi.json`); an integration test
//! calls every path and method it lists and fails if the router does not serve one, so the two
//! cannot drift apart silently.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

const DOCUMENT: &str = include_str!("openapi.json");

pub async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT)
}
