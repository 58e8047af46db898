//! The one error body every failure answers with: `{"error":{"code","message","request_id"}}`.

use keygate_core::Denial;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "No key with that id exists in this workspace.", "request_id": "req_0Ma3kX9bQ2pL7vT4cYw1"}}))]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

/// What went wrong, in a stable machine-readable `code` and a sentence for people.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The `request-id` of the answer, to quote when asking for help.
    pub request_id: String,
}

/// Every error code Keygate answers with. Clients should treat an unknown code like its
/// status (new codes may be added).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // Refusals of a customer's key (gateway mode; verify mode answers 200 with `code`).
    MissingApiKey,
    MalformedApiKey,
    InvalidApiKey,
    Revoked,
    Disabled,
    Expired,
    Forbidden,
    RateLimited,
    TokenLimitReached,
    CostLimitReached,
    SpendCapReached,
    InsufficientCredits,
    LimiterUnavailable,
    /// The database cannot be reached right now (503, `Retry-After`); keys a node has cached
    /// keep verifying meanwhile.
    StoreUnavailable,
    // The management API.
    Unauthenticated,
    InsufficientRole,
    NotFound,
    /// The request names something that does not exist in the workspace (a `scope` project,
    /// a `routing_rule_id`, a rate-limit policy): a conflict with the workspace's state (409),
    /// not a missing target (404), which would say the addressed resource itself is gone.
    UnknownReference,
    MethodNotAllowed,
    InvalidRequest,
    InvalidJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    // Conflicts (409).
    NameTaken,
    /// Another identity of the workspace has this `external_id`.
    ExternalIdTaken,
    /// The identity still has keys: move them to another identity (or none), or delete them,
    /// first.
    IdentityHasKeys,
    /// The workspace allows one active key per environment (`single_active_key`), and the
    /// request would make a second: the message names the active key(s).
    OneActiveKey,
    LastOwner,
    /// A member tried to remove themselves (another owner can).
    CannotRemoveSelf,
    /// The workspace has as many webhook endpoints as it may (20): delete one first.
    TooManyWebhooks,
    AlreadyExists,
    AlreadyImported,
    ConcurrentChange,
    KeyRevoked,
    /// The operation does not apply to an imported legacy key (rotate, regenerate, limits).
    LegacyKey,
    // The gateway.
    InvalidPath,
    InvalidBody,
    RequestTimeout,
    UpstreamUnavailable,
    UpstreamTimeout,
    ModelNotFound,
    InternalError,
}

/// A refused key answers with the denial's own code (the same string verify mode returns).
impl From<Denial> for ErrorCode {
    fn from(denial: Denial) -> Self {
        match denial {
            Denial::MissingApiKey => ErrorCode::MissingApiKey,
            Denial::MalformedApiKey => ErrorCode::MalformedApiKey,
            Denial::InvalidApiKey => ErrorCode::InvalidApiKey,
            Denial::Revoked => ErrorCode::Revoked,
            Denial::Disabled => ErrorCode::Disabled,
            Denial::Expired => ErrorCode::Expired,
            Denial::Forbidden => ErrorCode::Forbidden,
            Denial::RateLimited => ErrorCode::RateLimited,
            Denial::TokenLimitReached => ErrorCode::TokenLimitReached,
            Denial::CostLimitReached => ErrorCode::CostLimitReached,
            Denial::SpendCapReached => ErrorCode::SpendCapReached,
            Denial::InsufficientCredits => ErrorCode::InsufficientCredits,
            Denial::LimiterUnavailable => ErrorCode::LimiterUnavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_denial_answers_with_its_own_code() {
        for denial in Denial::ALL {
            let code = serde_json::to_value(ErrorCode::from(denial)).expect("serialise");
            assert_eq!(code, denial.code(), "{denial:?}");
        }
    }

    #[test]
    fn codes_are_snake_case_strings_both_ways() {
        for (code, text) in [
            (ErrorCode::IdempotencyKeyInUse, "idempotency_key_in_use"),
            (ErrorCode::PayloadTooLarge, "payload_too_large"),
            (ErrorCode::InternalError, "internal_error"),
            (ErrorCode::AlreadyImported, "already_imported"),
            (ErrorCode::LegacyKey, "legacy_key"),
        ] {
            assert_eq!(serde_json::to_value(code).expect("serialise"), text);
            let back: ErrorCode = serde_json::from_value(text.into()).expect("parse");
            assert_eq!(back, code);
        }
    }
}
