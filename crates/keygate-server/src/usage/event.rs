//! What one request's usage is: the [`UsageEvent`] the recorder takes, its [`UsageOutcome`],
//! and the [`UsageContext`] every event is made from.

use chrono::{DateTime, Utc};
use keygate_core::{Denial, Micros};

/// One request made with a key (or an attempt that was refused).
#[derive(Debug, Clone)]
pub struct UsageEvent {
    pub request_id: String,
    pub workspace_id: String,
    /// `None` when no key was identified (missing, malformed, unknown).
    pub key_id: Option<String>,
    /// Display form of the presented key, for failed-authentication records; never the secret.
    pub key_display: Option<String>,
    pub at: DateTime<Utc>,
    /// The route (gateway) or the caller's `operation` (verify mode).
    pub operation: String,
    pub project: Option<String>,
    pub outcome: UsageOutcome,
    pub tokens: u64,
    pub cost: Micros,
    /// Where the request came from, when known.
    pub source_ip: Option<String>,
}

/// What became of a request, as its usage is counted. Stored and served as its code
/// ([`UsageOutcome::as_str`]): `valid`, the denial's code, or `reported`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageOutcome {
    /// The key was admitted.
    Valid,
    /// The key was refused.
    Denied(Denial),
    /// Usage reported after the fact (`POST /v1/usage`): its tokens and cost are counted, but
    /// it is not a request of its own (the verification before it was).
    Reported,
}

impl UsageOutcome {
    /// The stored and wire form; a denial's is its code (`keygate_core::Denial::code`).
    pub fn as_str(self) -> &'static str {
        match self {
            UsageOutcome::Valid => "valid",
            UsageOutcome::Denied(denial) => denial.code(),
            UsageOutcome::Reported => "reported",
        }
    }

    /// Reads a stored outcome back; `None` for a code this version does not know.
    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "valid" => Some(UsageOutcome::Valid),
            "reported" => Some(UsageOutcome::Reported),
            code => Denial::from_code(code).map(UsageOutcome::Denied),
        }
    }

    /// The denial, when the key did not authenticate (the 401s): those attempts are aggregated
    /// as failed ones instead of logged one by one.
    pub(super) fn auth_failure(self) -> Option<Denial> {
        match self {
            UsageOutcome::Denied(denial) if denial.is_authentication_failure() => Some(denial),
            _ => None,
        }
    }
}

impl From<UsageOutcome> for keygate_api::verdict::Outcome {
    /// The wire form of a stored outcome: the one reader of stored outcomes is
    /// [`UsageOutcome::parse`], and answers convert from it.
    fn from(outcome: UsageOutcome) -> Self {
        use keygate_api::verdict::{Outcome, Verdict};
        match outcome {
            UsageOutcome::Valid => Outcome::Valid,
            UsageOutcome::Denied(denial) => Verdict::from(denial).into(),
            UsageOutcome::Reported => Outcome::Reported,
        }
    }
}

impl From<Option<Denial>> for UsageOutcome {
    /// A check's verdict: no denial is `Valid`.
    fn from(denial: Option<Denial>) -> Self {
        denial.map_or(UsageOutcome::Valid, UsageOutcome::Denied)
    }
}

/// What one request's usage is recorded with besides its key, outcome and amounts: built once
/// by the handler, used by `pipeline::check` and, for an AI request, by the settlement that
/// records it once its usage is known. Every [`UsageEvent`] is made by
/// [`UsageContext::event`], so verify mode and the gateway record the same way.
#[derive(Debug, Clone)]
pub struct UsageContext {
    pub request_id: String,
    /// The route (gateway) or the caller's `operation` (verify mode).
    pub operation: String,
    pub project: Option<String>,
    /// Where the request came from, when known.
    pub source_ip: Option<String>,
    /// Display form of the key as presented (`None` when none, or only blanks, was sent);
    /// never the secret.
    pub key_display: Option<String>,
}

impl UsageContext {
    /// The context of a request that presented `presented` (the raw key, if any).
    pub fn new(
        request_id: String,
        operation: String,
        project: Option<String>,
        source_ip: Option<String>,
        presented: Option<&str>,
    ) -> Self {
        Self {
            request_id,
            operation,
            project,
            source_ip,
            key_display: presented
                .filter(|k| !k.trim().is_empty())
                .map(keygate_core::key::display_form),
        }
    }

    /// The event for this request, made by `key_id` (`None`: no key was identified) of
    /// `workspace_id`, shown as the presented key's display form.
    pub fn event(
        &self,
        at: DateTime<Utc>,
        workspace_id: &str,
        key_id: Option<&str>,
        outcome: UsageOutcome,
        tokens: u64,
        cost: Micros,
    ) -> UsageEvent {
        UsageEvent {
            request_id: self.request_id.clone(),
            workspace_id: workspace_id.to_owned(),
            key_id: key_id.map(str::to_owned),
            key_display: self.key_display.clone(),
            at,
            operation: self.operation.clone(),
            project: self.project.clone(),
            outcome,
            tokens,
            cost,
            source_ip: self.source_ip.clone(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An event of key `key` (`None`: unidentified), numbered `n`, for the tests of the
    /// aggregation and the recorder.
    pub(crate) fn event(n: u32, outcome: UsageOutcome, key: Option<&str>) -> UsageEvent {
        UsageEvent {
            request_id: format!("req_{n}"),
            workspace_id: "ws_1".into(),
            key_id: key.map(Into::into),
            key_display: Some(format!("kg_live_{n}…")),
            at: DateTime::from_timestamp(1_800_000_000 + i64::from(n), 0).unwrap_or_default(),
            operation: "verify".into(),
            project: None,
            outcome,
            tokens: 5,
            cost: Micros(10),
            source_ip: Some(format!("10.0.0.{}", n % 7)),
        }
    }

    #[test]
    fn outcomes_are_stored_as_their_codes_and_read_back() {
        assert_eq!(UsageOutcome::Valid.as_str(), "valid");
        assert_eq!(UsageOutcome::Reported.as_str(), "reported");
        let all = [UsageOutcome::Valid, UsageOutcome::Reported]
            .into_iter()
            .chain(Denial::ALL.into_iter().map(UsageOutcome::Denied));
        for outcome in all {
            assert_eq!(UsageOutcome::parse(outcome.as_str()), Some(outcome));
            // The wire form (`keygate_api::verdict::Outcome`) is the stored form.
            let wire = keygate_api::verdict::Outcome::from(outcome);
            assert_eq!(
                serde_json::to_value(wire).expect("serialise"),
                outcome.as_str()
            );
        }
        for denial in Denial::ALL {
            assert_eq!(UsageOutcome::Denied(denial).as_str(), denial.code());
        }
        let failed = |d| UsageOutcome::Denied(d).auth_failure().is_some();
        assert!(failed(Denial::Revoked) && failed(Denial::MissingApiKey));
        assert!(!failed(Denial::Forbidden) && !failed(Denial::RateLimited));
        assert_eq!(UsageOutcome::Valid.auth_failure(), None);
        assert_eq!(UsageOutcome::parse("no_such_code"), None);
    }
}
