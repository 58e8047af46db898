//! `Idempotency-Key` for every POST: a retried request with the same key has no second effect
//! and gets the first answer back.
//!
//! This layer runs *after* the caller was authenticated and authorized for the route
//! (`auth::authorize`), never before: a deleted member's token, a caller whose role no longer
//! allows the call, or no token at all gets 401/403 and neither claims nor replays anything.
//! The claim is scoped to the member *and their current role*, so an answer (which can hold a
//! freshly issued secret) is replayed only to the member who made the request, and only while
//! they could still make it. It is bound to a fingerprint of the request (method, path, body),
//! so the same key reused for a different request is refused (422) and a concurrent duplicate
//! is told to wait (409). Only successful answers are remembered — a failed request had no
//! effect, so its retry simply runs again. Remembered answers are encrypted with a key derived
//! from the server secret and the idempotency key, so the database alone never holds a usable
//! secret. They are purged after 24 hours.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keygate_store::{IdempotencyBegin, IdempotencyClaim};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub const HEADER: &str = "idempotency-key";
/// An unfinished claim older than this belongs to a request whose process died.
const STALE_AFTER_SECS: i64 = 60;
/// How long answers are remembered.
pub const RETENTION_HOURS: i64 = 24;

pub async fn honour_idempotency_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_owned()
        }
        _ => return ApiError::invalid(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
        )
        .into_response(),
    };
    let Some(caller) = request.extensions().get::<Caller>() else {
        // `auth::authorize` runs first on every management route; without a caller there is
        // nobody to remember an answer for.
        return ApiError::internal("idempotency without an authenticated caller").into_response();
    };
    let owner = format!("{}\n{}", caller.member.id, caller.member.role.as_str());
    match run(&state, key, owner.as_bytes(), request, next).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn run(
    state: &AppState,
    key: String,
    owner: &[u8],
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let scope = hex::encode(&state.secret.derive("idempotency-scope", owner)[..16]);
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| ApiError::TooLarge)?;
    let mut material = Vec::with_capacity(body.len() + 64);
    material.extend_from_slice(parts.method.as_str().as_bytes());
    material.push(b' ');
    material.extend_from_slice(parts.uri.path().as_bytes());
    material.push(b'\n');
    material.extend_from_slice(&body);
    let claim = IdempotencyClaim {
        scope: scope.clone(),
        key: key.clone(),
        fingerprint: state.secret.derive("idempotency-request", &material),
        now: state.clock.now(),
    };
    let began = state
        .store
        .idempotency_begin(&claim, chrono::Duration::seconds(STALE_AFTER_SECS))
        .await?;
    match began {
        IdempotencyBegin::Claimed => {}
        IdempotencyBegin::Replay { status, body } => {
            let plain = decrypt(state, &scope, &key, &body)?;
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, plain).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
        IdempotencyBegin::InProgress => {
            return Err(ApiError::Idempotency(
                keygate_api::error::ErrorCode::IdempotencyKeyInUse,
                "A request with this Idempotency-Key is still being processed. Retry in a moment.",
            ))
        }
        IdempotencyBegin::Mismatch => {
            return Err(ApiError::Idempotency(
                keygate_api::error::ErrorCode::IdempotencyKeyReused,
                "This Idempotency-Key was already used for a different request. Use a new key for a new request.",
            ))
        }
    }

    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if !response.status().is_success() {
        if let Err(e) = state.store.idempotency_abandon(&scope, &key).await {
            tracing::warn!(error = %e, "could not release an idempotency claim");
        }
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::internal(format!("reading a response body: {e}")))?;
    let sealed = encrypt(state, &scope, &key, &bytes)?;
    if let Err(e) = state
        .store
        .idempotency_finish(&scope, &key, parts.status.as_u16(), &sealed)
        .await
    {
        // The change itself is committed; a retry would find the claim stale and run again,
        // which unique names turn into a clear conflict rather than a duplicate.
        tracing::warn!(error = %e, "could not remember an idempotent answer");
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn encrypt(state: &AppState, scope: &str, key: &str, plain: &[u8]) -> Result<Vec<u8>, ApiError> {
    let context = format!("{scope}\n{key}");
    crate::secret::seal(&state.secret, "idempotency-body", context.as_bytes(), plain)
        .ok_or_else(|| ApiError::internal("sealing an idempotent answer failed"))
}

fn decrypt(state: &AppState, scope: &str, key: &str, sealed: &[u8]) -> Result<Vec<u8>, ApiError> {
    let context = format!("{scope}\n{key}");
    crate::secret::open(
        &state.secret,
        "idempotency-body",
        context.as_bytes(),
        sealed,
    )
    .ok_or_else(|| {
        ApiError::internal("a remembered answer could not be opened (was KEYGATE_SECRET changed?)")
    })
}
