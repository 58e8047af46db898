//! The HTTP boundary's one error type, mapped to status + stable code + message exactly once.
//!
//! Handlers return `Result<_, ApiError>`. `into_response` does not render the body itself: it
//! attaches an [`ErrorBody`] extension, and the request-id middleware renders
//! `{"error":{"code","message","request_id"}}` with the id of this request. That way every
//! error — ours, axum's rejections, the 404 fallback, even a caught panic — has one shape and
//! always carries the right request id. A 5xx says nothing internal; its cause is logged.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keygate_api::error::ErrorCode;
use keygate_core::Denial;
use keygate_limits::LimiterError;
use keygate_store::{ConflictKind, StoreError};

/// What a client is told, before the request id is added. The code becomes its string (the
/// one on the wire) only when the body is serialised.
#[derive(Debug, Clone)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The management token is missing, malformed or unknown.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// The member's role does not allow this.
    #[error("role {role} cannot {action}")]
    RoleForbidden {
        role: &'static str,
        action: &'static str,
    },
    /// A key was refused (gateway mode answers with this directly).
    #[error("denied: {0:?}")]
    Denied(Denial, Option<u64>),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Something a request names (not the path's id) does not exist; the text says what.
    #[error("missing: {0}")]
    UnknownReference(String),
    /// The operation does not apply to an imported legacy key.
    #[error("legacy key: {0}")]
    LegacyKey(String),
    #[error("no route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request is well-formed JSON but a value is not acceptable.
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("bad JSON: {0}")]
    BadJson(String),
    #[error("body too large")]
    TooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("conflict: {message}")]
    Conflict { code: ErrorCode, message: String },
    #[error("idempotency: {0:?}")]
    Idempotency(ErrorCode, &'static str),
    /// The limiter cannot be reached: fail closed.
    #[error("limiter unavailable: {0}")]
    LimiterUnavailable(String),
    /// The store cannot be reached (the text, for the log, says why).
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// Gateway: the upstream could not be reached or broke the connection (the text, for the
    /// log, names which and why).
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    /// Gateway: the upstream did not answer within its timeout.
    #[error("upstream timed out: {0}")]
    UpstreamTimeout(String),
    /// AI gateway: no configured provider serves (or prices) the requested model.
    #[error("model not found: {0}")]
    ModelNotFound(String),
    /// A gateway request body over its configured limit (in bytes).
    #[error("request body over {0} bytes")]
    RequestTooLarge(usize),
    /// Gateway: a request path that could leave the upstream's base or means different things
    /// to different parsers (dot segments, encoded slashes or dots, backslashes, …).
    #[error("invalid path")]
    InvalidPath,
    /// Gateway: the client's request body is malformed or ambiguously framed (the text says
    /// how, for the client too: it is the client's own request).
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// Gateway: the client stopped sending its request body before it was complete.
    #[error("request body timed out")]
    BodyTimeout,
    /// Anything that is our fault. The text is logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    /// Maps the store error of a lookup by id: "not found" names what was looked for (and is
    /// what another workspace's id gets too); anything else maps as usual.
    pub fn store_lookup(what: &'static str) -> impl Fn(StoreError) -> ApiError {
        move |error| match error {
            StoreError::NotFound => ApiError::NotFound(what),
            other => other.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Invalid(message.into())
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    /// The status, stable code and person-readable message this error answers with (a 5xx
    /// message says nothing internal): what the dashboard shows on a page, as the API does in
    /// its JSON body.
    pub fn public(&self) -> (StatusCode, ErrorCode, String) {
        let (status, body) = self.status_and_body();
        (status, body.code, body.message)
    }

    fn status_and_body(&self) -> (StatusCode, ErrorBody) {
        use ApiError::*;
        let (status, code, message): (u16, ErrorCode, String) = match self {
            Unauthenticated(why) => (401, ErrorCode::Unauthenticated, (*why).to_string()),
            RoleForbidden { role, action } => (
                403,
                ErrorCode::InsufficientRole,
                format!("A member with the {role} role cannot {action}. Ask an owner."),
            ),
            Denied(denial, _) => (
                denial.status(),
                ErrorCode::from(*denial),
                denial.message().to_string(),
            ),
            NotFound(what) => (
                404,
                ErrorCode::NotFound,
                format!("No {what} with that id exists in this workspace."),
            ),
            UnknownReference(message) => (409, ErrorCode::UnknownReference, message.clone()),
            LegacyKey(message) => (409, ErrorCode::LegacyKey, message.clone()),
            NoRoute => (
                404,
                ErrorCode::NotFound,
                "No such endpoint. See /openapi.json for the API.".to_string(),
            ),
            MethodNotAllowed => (
                405,
                ErrorCode::MethodNotAllowed,
                "This endpoint does not accept that HTTP method.".to_string(),
            ),
            Invalid(message) => (400, ErrorCode::InvalidRequest, message.clone()),
            BadJson(message) => (400, ErrorCode::InvalidJson, message.clone()),
            TooLarge => (
                413,
                ErrorCode::PayloadTooLarge,
                "The request body is too large (the limit is 1 MiB).".to_string(),
            ),
            UnsupportedMediaType => (
                415,
                ErrorCode::UnsupportedMediaType,
                "Send the body as JSON with `Content-Type: application/json`.".to_string(),
            ),
            Conflict { code, message } => (409, *code, message.clone()),
            Idempotency(code, message) => (
                if *code == ErrorCode::IdempotencyKeyInUse {
                    409
                } else {
                    422
                },
                *code,
                (*message).to_string(),
            ),
            LimiterUnavailable(_) => (
                503,
                ErrorCode::from(Denial::LimiterUnavailable),
                Denial::LimiterUnavailable.message().to_string(),
            ),
            StoreUnavailable(_) => (
                503,
                ErrorCode::StoreUnavailable,
                "The database cannot be reached right now. Retry shortly; keys already in use keep verifying meanwhile."
                    .to_string(),
            ),
            UpstreamUnavailable(_) => (
                502,
                ErrorCode::UpstreamUnavailable,
                "The service behind this gateway could not be reached. Retry later, and quote the request id if it persists."
                    .to_string(),
            ),
            UpstreamTimeout(_) => (
                504,
                ErrorCode::UpstreamTimeout,
                "The service behind this gateway did not answer in time. Retry later, and quote the request id if it persists."
                    .to_string(),
            ),
            ModelNotFound(model) => (
                404,
                ErrorCode::ModelNotFound,
                format!("The model {model:?} is not offered here. GET /v1/models lists the models you can use."),
            ),
            RequestTooLarge(limit) => (
                413,
                ErrorCode::PayloadTooLarge,
                format!("The request body is too large (the limit is {limit} bytes)."),
            ),
            InvalidPath => (
                400,
                ErrorCode::InvalidPath,
                "The request path is not accepted: it must not contain `.` or `..` segments, empty segments, encoded slashes, backslashes or percent signs, or control characters."
                    .to_string(),
            ),
            InvalidBody(why) => (400, ErrorCode::InvalidBody, why.clone()),
            BodyTimeout => (
                408,
                ErrorCode::RequestTimeout,
                "The request body stopped arriving before it was complete.".to_string(),
            ),
            Internal(_) => (
                500,
                ErrorCode::InternalError,
                "Something went wrong on our side. Retry, and quote the request id if it persists."
                    .to_string(),
            ),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, ErrorBody { code, message })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = status.into_response();
        if let ApiError::Denied(_, Some(retry_after)) = &self {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(*retry_after));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(body);
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound("record"),
            StoreError::Conflict(ConflictKind::Name) => ApiError::Conflict {
                code: ErrorCode::NameTaken,
                message: "That name is already used in this workspace. Pick another name."
                    .into(),
            },
            StoreError::Conflict(ConflictKind::ActiveKey) => ApiError::Conflict {
                code: ErrorCode::OneActiveKey,
                message: "This workspace allows one active key per environment, and one is active. Rotate that key for a new secret (with a grace period if both must work for a while), or disable or revoke it first.".into(),
            },
            StoreError::Conflict(ConflictKind::LastOwner) => ApiError::Conflict {
                code: ErrorCode::LastOwner,
                message: "This is the workspace's last owner. Add another owner first.".into(),
            },
            StoreError::Conflict(ConflictKind::ExternalId) => ApiError::Conflict {
                code: ErrorCode::ExternalIdTaken,
                message: "Another identity of this workspace has that external_id. Find it with GET /v1/identities?external_id=…".into(),
            },
            StoreError::Conflict(ConflictKind::InUse) => ApiError::Conflict {
                code: ErrorCode::IdentityHasKeys,
                message: "The identity still has keys. Move them to another identity (PATCH /v1/keys/{id} with identity_id) or delete them first; GET /v1/keys?identity=… lists them.".into(),
            },
            StoreError::UnknownReference(what) => ApiError::UnknownReference(format!(
                "The {what} referred to does not exist in this workspace."
            )),
            StoreError::Conflict(ConflictKind::Id) => ApiError::Conflict {
                code: ErrorCode::AlreadyExists,
                message: "A record with that id already exists.".into(),
            },
            StoreError::VersionConflict => ApiError::Conflict {
                code: ErrorCode::ConcurrentChange,
                message: "The record was changed by another request at the same time. Read it again and retry.".into(),
            },
            StoreError::BadCursor => ApiError::invalid(
                "The pagination cursor is not valid. Use the next_cursor of a previous page.",
            ),
            other if other.is_unavailable() => ApiError::StoreUnavailable(other.to_string()),
            other => ApiError::internal(other),
        }
    }
}

/// A client string over its limit (see `keygate_core::text`): 400, naming the field and limit.
impl From<keygate_core::text::FieldError> for ApiError {
    fn from(error: keygate_core::text::FieldError) -> Self {
        ApiError::invalid(error.to_string())
    }
}

impl From<LimiterError> for ApiError {
    fn from(error: LimiterError) -> Self {
        ApiError::LimiterUnavailable(error.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::BytesRejection(_) => ApiError::TooLarge,
            JsonRejection::JsonDataError(e) => ApiError::BadJson(format!(
                "The JSON has a wrong or missing field: {}",
                e.body_text().trim_start_matches(
                    "Failed to deserialize the JSON body into the target type: "
                )
            )),
            JsonRejection::JsonSyntaxError(_) => ApiError::BadJson(
                "The body is not valid JSON. Check quotes, commas and brackets.".into(),
            ),
            other => ApiError::BadJson(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::invalid(format!("Bad query string: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::NoRoute
    }
}
