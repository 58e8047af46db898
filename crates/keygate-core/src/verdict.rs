//! A verdict is data: every reason a key is refused, with the one table that maps it to the
//! stable code and the HTTP status a caller should answer its own client with.

use serde::Serialize;

/// Why a request with a key is refused, in the order the checks run (see `verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Denial {
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
    /// The limiter's store cannot be reached; we refuse rather than run unlimited.
    LimiterUnavailable,
}

impl Denial {
    /// Every variant, for tables and tests.
    pub const ALL: [Denial; 13] = [
        Denial::MissingApiKey,
        Denial::MalformedApiKey,
        Denial::InvalidApiKey,
        Denial::Revoked,
        Denial::Disabled,
        Denial::Expired,
        Denial::Forbidden,
        Denial::RateLimited,
        Denial::TokenLimitReached,
        Denial::CostLimitReached,
        Denial::SpendCapReached,
        Denial::InsufficientCredits,
        Denial::LimiterUnavailable,
    ];

    /// The stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Denial::MissingApiKey => "missing_api_key",
            Denial::MalformedApiKey => "malformed_api_key",
            Denial::InvalidApiKey => "invalid_api_key",
            Denial::Revoked => "revoked",
            Denial::Disabled => "disabled",
            Denial::Expired => "expired",
            Denial::Forbidden => "forbidden",
            Denial::RateLimited => "rate_limited",
            Denial::TokenLimitReached => "token_limit_reached",
            Denial::CostLimitReached => "cost_limit_reached",
            Denial::SpendCapReached => "spend_cap_reached",
            Denial::InsufficientCredits => "insufficient_credits",
            Denial::LimiterUnavailable => "limiter_unavailable",
        }
    }

    /// The HTTP status for this denial.
    pub fn status(self) -> u16 {
        match self {
            Denial::MissingApiKey
            | Denial::MalformedApiKey
            | Denial::InvalidApiKey
            | Denial::Revoked
            | Denial::Disabled
            | Denial::Expired => 401,
            Denial::Forbidden => 403,
            Denial::RateLimited | Denial::TokenLimitReached | Denial::CostLimitReached => 429,
            Denial::SpendCapReached | Denial::InsufficientCredits => 402,
            Denial::LimiterUnavailable => 503,
        }
    }

    /// The denial with this [`code`](Denial::code), if any.
    pub fn from_code(code: &str) -> Option<Denial> {
        Self::ALL.into_iter().find(|d| d.code() == code)
    }

    /// Whether the key did not authenticate (the 401s): these attempts are the ones kept as
    /// failed authentication for the audit trail.
    pub fn is_authentication_failure(self) -> bool {
        self.status() == 401
    }

    /// A sentence a person can act on.
    pub fn message(self) -> &'static str {
        match self {
            Denial::MissingApiKey => "No API key was sent. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`.",
            Denial::MalformedApiKey => "The API key is malformed: it was mistyped, truncated or is not a key of this service. Copy it again from where it was issued.",
            Denial::InvalidApiKey => "The API key is not valid. Check that it belongs to this workspace, or create a new one.",
            Denial::Revoked => "The API key has been revoked. Create a new key.",
            Denial::Disabled => "The API key is disabled. An owner or editor can enable it again.",
            Denial::Expired => "The API key has expired (or was rotated and its grace period ended). Create or regenerate a key.",
            Denial::Forbidden => "The API key lacks the project or permission this request needs.",
            Denial::RateLimited => "Too many requests for this key. Retry after the number of seconds in Retry-After.",
            Denial::TokenLimitReached => "The key's token limit for this period is used up. It resets at the time in RateLimit-Reset, or raise the limit.",
            Denial::CostLimitReached => "The key's cost limit for this period is used up. It resets at the time in RateLimit-Reset, or raise the limit.",
            Denial::SpendCapReached => "The key's daily spend cap is reached. It resets at 00:00 UTC.",
            Denial::InsufficientCredits => "The workspace has no credit left. Add credit to continue.",
            Denial::LimiterUnavailable => "Limits cannot be checked right now, so the request is refused rather than let through unlimited. Retry shortly.",
        }
    }

    /// The sentence when the key's identity's limit refused (the limit is shared by all the
    /// customer's keys, so "the key's" would send the reader to the wrong limit).
    pub fn identity_message(self) -> &'static str {
        match self {
            Denial::RateLimited => "Too many requests across the keys of this identity (customer). Retry after the number of seconds in Retry-After.",
            Denial::TokenLimitReached => "The token limit shared by this identity's keys is used up for this period. It resets at the time in RateLimit-Reset, or raise the identity's limit.",
            Denial::CostLimitReached => "The cost limit shared by this identity's keys is used up for this period. It resets at the time in RateLimit-Reset, or raise the identity's limit.",
            Denial::SpendCapReached => "The daily spend cap shared by this identity's keys is reached. It resets at 00:00 UTC.",
            other => other.message(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_denial_has_a_distinct_code_and_a_client_or_service_status() {
        let mut codes: Vec<_> = Denial::ALL.iter().map(|d| d.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Denial::ALL.len());
        for d in Denial::ALL {
            assert!(matches!(d.status(), 401 | 402 | 403 | 429 | 503));
            assert!(!d.message().is_empty());
            assert_eq!(Denial::from_code(d.code()), Some(d));
        }
        assert_eq!(Denial::from_code("valid"), None);
        let failed: Vec<_> = Denial::ALL
            .into_iter()
            .filter(|d| d.is_authentication_failure())
            .collect();
        assert_eq!(failed, &Denial::ALL[..6]);
    }
}
