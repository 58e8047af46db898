//! What a check decided, as clients read it: `valid` or the code of the refusal (verify mode,
//! reservations), and the outcomes usage reports and the request log count.

use keygate_core::Denial;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `valid`, or why the key was refused (the stable code of `keygate_core::Denial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
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
}

impl From<Denial> for Verdict {
    fn from(denial: Denial) -> Self {
        match denial {
            Denial::MissingApiKey => Verdict::MissingApiKey,
            Denial::MalformedApiKey => Verdict::MalformedApiKey,
            Denial::InvalidApiKey => Verdict::InvalidApiKey,
            Denial::Revoked => Verdict::Revoked,
            Denial::Disabled => Verdict::Disabled,
            Denial::Expired => Verdict::Expired,
            Denial::Forbidden => Verdict::Forbidden,
            Denial::RateLimited => Verdict::RateLimited,
            Denial::TokenLimitReached => Verdict::TokenLimitReached,
            Denial::CostLimitReached => Verdict::CostLimitReached,
            Denial::SpendCapReached => Verdict::SpendCapReached,
            Denial::InsufficientCredits => Verdict::InsufficientCredits,
            Denial::LimiterUnavailable => Verdict::LimiterUnavailable,
        }
    }
}

impl From<Option<Denial>> for Verdict {
    /// No denial is `valid`.
    fn from(denial: Option<Denial>) -> Self {
        denial.map_or(Verdict::Valid, Verdict::from)
    }
}

/// What became of a request, as usage and the request log count it: `valid`, the code of the
/// refusal, or `reported` (usage reported after the fact with `POST /v1/usage`: its tokens and
/// cost count, but it is not a request of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Valid,
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
    Reported,
}

impl From<Verdict> for Outcome {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Valid => Outcome::Valid,
            Verdict::MissingApiKey => Outcome::MissingApiKey,
            Verdict::MalformedApiKey => Outcome::MalformedApiKey,
            Verdict::InvalidApiKey => Outcome::InvalidApiKey,
            Verdict::Revoked => Outcome::Revoked,
            Verdict::Disabled => Outcome::Disabled,
            Verdict::Expired => Outcome::Expired,
            Verdict::Forbidden => Outcome::Forbidden,
            Verdict::RateLimited => Outcome::RateLimited,
            Verdict::TokenLimitReached => Outcome::TokenLimitReached,
            Verdict::CostLimitReached => Outcome::CostLimitReached,
            Verdict::SpendCapReached => Outcome::SpendCapReached,
            Verdict::InsufficientCredits => Outcome::InsufficientCredits,
            Verdict::LimiterUnavailable => Outcome::LimiterUnavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_names_are_the_denials_codes() {
        for denial in Denial::ALL {
            let verdict = Verdict::from(denial);
            assert_eq!(
                serde_json::to_value(verdict).expect("serialise"),
                denial.code()
            );
            assert_eq!(
                serde_json::to_value(Outcome::from(verdict)).expect("serialise"),
                denial.code()
            );
        }
        assert_eq!(
            serde_json::to_value(Outcome::Reported).expect("serialise"),
            "reported"
        );
        assert_eq!(
            serde_json::to_value(Outcome::Valid).expect("serialise"),
            "valid"
        );
    }
}
