//! Usage reports, read from the daily rollups (`GET /v1/keys/{id}/usage`, `GET /v1/usage`),
//! and the request log (`GET /v1/requests/{request_id}`).

use chrono::{DateTime, NaiveDate, Utc};
use keygate_core::Micros;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::verdict::Outcome;

/// The longest report: a year, leap day included.
pub const MAX_DAYS: u32 = 366;

/// The report's length when `days` is not given.
pub const DEFAULT_DAYS: u32 = 7;

/// `GET /v1/keys/{id}/usage`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyUsageParams {
    /// The last `days` UTC days, today included; default 7.
    #[param(minimum = 1, maximum = 366, nullable = false, example = 7)]
    pub days: Option<u32>,
}

/// What workspace usage is summed by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One group per key (`key_id`; `null` for requests whose key was not identified).
    #[default]
    Key,
    /// One group per project (`project`; `null` for requests that named none).
    Project,
    /// One group per operation (`operation`).
    Operation,
    /// One group per UTC day of the range, in order, zeros included (`date`).
    Day,
    /// One group per identity (`identity_id`; `null` for keys of no identity). Usage follows
    /// each key's current identity: a key moved to another takes its history along.
    Identity,
}

impl GroupBy {
    /// The field that names each group in the answer.
    pub fn field(self) -> &'static str {
        match self {
            GroupBy::Key => "key_id",
            GroupBy::Project => "project",
            GroupBy::Operation => "operation",
            GroupBy::Day => "date",
            GroupBy::Identity => "identity_id",
        }
    }
}

/// `GET /v1/usage`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkspaceUsageParams {
    /// The last `days` UTC days, today included; default 7.
    #[param(minimum = 1, maximum = 366, nullable = false, example = 7)]
    pub days: Option<u32>,
    /// What to sum by; default `key`.
    #[param(inline, nullable = false)]
    pub group_by: Option<GroupBy>,
}

/// Requests split into valid and denied, with what they consumed. Reported usage adds tokens
/// and cost but no request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"requests": 14, "valid": 12, "denied": 2, "tokens": 5200, "cost": "0.42"}))]
pub struct Counts {
    pub requests: u64,
    pub valid: u64,
    pub denied: u64,
    pub tokens: u64,
    #[serde(deserialize_with = "crate::fields::total_micros")]
    #[schema(schema_with = crate::fields::money_total)]
    pub cost: Micros,
}

/// Per-day means over the whole range (days without traffic count): requests and tokens to
/// two decimals (whole numbers stay integers), cost in micro-dollars rounded down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"requests": 2, "tokens": 742.86, "cost": "0.06"}))]
pub struct DailyAverage {
    #[schema(value_type = f64, minimum = 0)]
    pub requests: serde_json::Number,
    #[schema(value_type = f64, minimum = 0)]
    pub tokens: serde_json::Number,
    #[serde(deserialize_with = "crate::fields::total_micros")]
    #[schema(schema_with = crate::fields::money_total)]
    pub cost: Micros,
}

/// One UTC day of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DayUsage {
    pub date: NaiveDate,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One operation of a key's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OperationUsage {
    pub operation: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One project of a key's report (`null`: requests that named none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProjectUsage {
    pub project: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One outcome of a key's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutcomeUsage {
    pub outcome: Outcome,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The answer to `GET /v1/keys/{id}/usage`: every day of the range (zeros included, so a
/// chart needs no gap filling), and the range summed by operation, project and outcome (most
/// requests first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyUsage {
    pub key_id: String,
    /// The first day of the range (UTC).
    pub from: NaiveDate,
    /// The last day of the range: today (UTC).
    pub to: NaiveDate,
    pub days: Vec<DayUsage>,
    pub by_operation: Vec<OperationUsage>,
    pub by_project: Vec<ProjectUsage>,
    /// Outcomes this version does not know (written by a newer one) are counted as denied in
    /// the other lists, and not listed here.
    pub by_outcome: Vec<OutcomeUsage>,
    pub totals: Counts,
    pub daily_average: DailyAverage,
}

/// What names a group of workspace usage: the one field of `group_by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupName {
    /// `group_by=key`: the key's id, `null` for requests whose key was not identified.
    KeyId(Option<String>),
    /// `group_by=project`: the project's id, `null` for requests that named none.
    Project(Option<String>),
    /// `group_by=operation`.
    Operation(String),
    /// `group_by=day`.
    Date(NaiveDate),
    /// `group_by=identity`: the identity's id, `null` for keys of no identity.
    IdentityId(Option<String>),
}

/// One group of workspace usage: the field `group_by` names, and its counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageGroup {
    #[serde(flatten)]
    pub group: GroupName,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The answer to `GET /v1/usage`: groups most requests first, or every day in order for
/// `group_by=day`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceUsage {
    pub group_by: GroupBy,
    /// The first day of the range (UTC).
    pub from: NaiveDate,
    /// The last day of the range: today (UTC).
    pub to: NaiveDate,
    pub groups: Vec<UsageGroup>,
    pub totals: Counts,
    pub daily_average: DailyAverage,
}

/// One request that identified a key, as the request log keeps it: the answer to a support
/// ticket quoting a `request-id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"request_id": "req_0Ma3kX9bQ2pL7vT4cYw1", "workspace_id": "ws_5tR8yU1iO3pA", "key_id": "key_2bX9kQ4mN7pL1vT8cYw3", "key_display": "kg_live_2bX9…aB5d", "at": "2026-01-31T12:00:00Z", "operation": "POST /v1/chat", "project": null, "outcome": "valid", "tokens": 1200, "cost": "0.0042", "source_ip": "203.0.113.7"}))]
pub struct RequestLogEntry {
    pub request_id: String,
    pub workspace_id: String,
    pub key_id: String,
    /// The key's display form (`kg_live_ab12…mn34`); never the secret.
    pub key_display: Option<String>,
    pub at: DateTime<Utc>,
    pub operation: String,
    pub project: Option<String>,
    pub outcome: Outcome,
    pub tokens: u64,
    pub cost: Micros,
    pub source_ip: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_read_back_by_their_one_field() {
        let counts = Counts {
            requests: 3,
            valid: 2,
            denied: 1,
            tokens: 40,
            cost: Micros(1_000_000_572_127_176),
        };
        for group in [
            GroupName::KeyId(None),
            GroupName::KeyId(Some("key_a".into())),
            GroupName::Project(None),
            GroupName::Operation("POST /v1/chat".into()),
            GroupName::Date(NaiveDate::default()),
        ] {
            let item = UsageGroup {
                group: group.clone(),
                counts,
            };
            let text = serde_json::to_value(&item).expect("json");
            assert_eq!(text["requests"], 3, "{text}");
            let back: UsageGroup = serde_json::from_value(text.clone()).expect("read back");
            assert_eq!(back, item, "{text}");
        }
        let day: DayUsage = serde_json::from_value(
            json!({"date": "2026-01-31", "requests": 1, "valid": 1, "denied": 0, "tokens": 0, "cost": "0.00", "newer": true}),
        )
        .expect("an answer with a field this version does not know");
        assert_eq!(day.counts.requests, 1);
    }
}
