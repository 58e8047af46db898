//! Gives every request a `req_…` id, returns it in the `request-id` header, renders error
//! bodies with it (see `error.rs`) and writes one access log line per request (at debug level, target `keygate::access`, so
//! the hot path pays nothing for it unless asked).
//!
//! The log line holds method, path, status and latency — never headers, query strings or
//! bodies, which is where secrets travel.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use keygate_api::error::{ErrorDetail, ErrorResponse};
use keygate_core::ids;

use crate::error::ErrorBody;

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn assign_request_id(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = ids::new_request_id();
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();

    let mut response = next.run(request).await;

    if let Some(error) = response.extensions_mut().remove::<ErrorBody>() {
        let body = ErrorResponse {
            error: ErrorDetail {
                code: error.code,
                message: error.message,
                request_id: id.clone(),
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(bytes);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", value);
    }
    tracing::debug!(
        target: "keygate::access",
        request_id = %id,
        %method,
        path = %path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
    );
    response
}
