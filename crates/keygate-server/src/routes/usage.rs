//! Usage reports, read from the daily rollups: `GET /v1/keys/{id}/usage` (one key, the numbers
//! a usage chart needs) and `GET /v1/usage` (the workspace, summed by key, project, operation
//! or day), and `GET /v1/identities/{id}/usage` (the keys of one identity, summed the same
//! way). Any member may read them.
//!
//! Every day of the range is present, zeros included, so a chart needs no gap filling. Days
//! are UTC. Events reach the rollups with the next usage flush (within a second by default),
//! so the last second of traffic may not be counted yet.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{Days, NaiveDate};
use keygate_api::usage::{
    Counts, DailyAverage, DayUsage, GroupBy, GroupName, KeyUsage, KeyUsageParams, OperationUsage,
    OutcomeUsage, ProjectUsage, UsageGroup, WorkspaceUsage, WorkspaceUsageParams, DEFAULT_DAYS,
    MAX_DAYS,
};
use keygate_api::verdict::Outcome;
use keygate_core::Micros;
use keygate_store::{UsageDimension, UsageQuery};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::routes::common::{load_identity, load_key};
use crate::state::AppState;
use crate::usage::UsageOutcome;

/// The largest count an answer holds: `i64::MAX`, as stored.
const MAX_COUNT: u64 = i64::MAX as u64;

/// Adds a rollup stored with `outcome` to `counts` (an outcome this version does not know
/// counts as denied, as it always has).
fn add(counts: &mut Counts, outcome: &str, requests: u64, tokens: u64, cost: Micros) {
    // Every sum saturates at `i64::MAX`, like the stored counters (which may already be
    // there) and the documented `int64` counts.
    let sum = |a: u64, b: u64| a.saturating_add(b).min(MAX_COUNT);
    counts.requests = sum(counts.requests, requests);
    match UsageOutcome::parse(outcome) {
        Some(UsageOutcome::Valid) => counts.valid = sum(counts.valid, requests),
        Some(UsageOutcome::Reported) => {}
        Some(UsageOutcome::Denied(_)) | None => counts.denied = sum(counts.denied, requests),
    }
    counts.tokens = sum(counts.tokens, tokens);
    counts.cost = counts.cost.saturating_add(cost);
}

/// One key's usage over the last `days` UTC days: every day, and the range summed by
/// operation, project and outcome.
#[utoipa::path(get, path = "/v1/keys/{id}/usage", tag = "usage",
    params(("id" = String, Path, description = "The key's id (`key_…`)."), KeyUsageParams),
    responses((status = 200, description = "The key's usage.", body = KeyUsage)))]
pub async fn get_key_usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<KeyUsageParams>,
) -> Result<Json<KeyUsage>, ApiError> {
    let days = valid_days(params.days)?;
    load_key(&state, &caller, &id).await?;
    let (from, to) = range(&state, days);
    let rollups = state
        .store
        .usage_rollups(
            &caller.workspace.id,
            &UsageQuery {
                key_id: Some(id.clone()),
                identity_id: None,
                from,
                to,
            },
        )
        .await?;

    let mut per_day: BTreeMap<NaiveDate, Counts> = from
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|d| (d, Counts::default()))
        .collect();
    let mut by_operation: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut by_project: BTreeMap<Option<&str>, Counts> = BTreeMap::new();
    let mut by_outcome: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut totals = Counts::default();
    for r in &rollups {
        let add = |c: &mut Counts| add(c, &r.outcome, r.requests, r.tokens, r.cost);
        add(per_day.entry(r.day).or_default());
        add(by_operation.entry(&r.operation).or_default());
        add(by_project.entry(r.project.as_deref()).or_default());
        add(by_outcome.entry(&r.outcome).or_default());
        add(&mut totals);
    }
    Ok(Json(KeyUsage {
        key_id: id,
        from,
        to,
        days: per_day
            .into_iter()
            .map(|(date, counts)| DayUsage { date, counts })
            .collect(),
        by_operation: ranked(by_operation, |operation, counts| OperationUsage {
            operation: operation.to_owned(),
            counts,
        }),
        by_project: ranked(by_project, |project, counts| ProjectUsage {
            project: project.map(str::to_owned),
            counts,
        }),
        // An outcome written by a newer version is counted as denied above, but has no name
        // this version can give it.
        by_outcome: ranked(
            by_outcome.into_iter().filter_map(|(outcome, counts)| {
                Some((Outcome::from(UsageOutcome::parse(outcome)?), counts))
            }),
            |outcome, counts| OutcomeUsage { outcome, counts },
        ),
        daily_average: daily_average(&totals, days),
        totals,
    }))
}

/// The workspace's usage over the last `days` UTC days, summed by key, project, operation or
/// day.
#[utoipa::path(get, path = "/v1/usage", tag = "usage",
    params(WorkspaceUsageParams),
    responses((status = 200, description = "The workspace's usage, grouped.", body = WorkspaceUsage)))]
pub async fn get_workspace_usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<WorkspaceUsageParams>,
) -> Result<Json<WorkspaceUsage>, ApiError> {
    grouped_usage(&state, &caller, params, None).await.map(Json)
}

/// Usage of the workspace, or of one identity's keys, summed by what `params.group_by` says.
async fn grouped_usage(
    state: &AppState,
    caller: &Caller,
    params: WorkspaceUsageParams,
    identity_id: Option<String>,
) -> Result<WorkspaceUsage, ApiError> {
    let days = valid_days(params.days)?;
    let group_by = params.group_by.unwrap_or_default();
    let dimension = match group_by {
        GroupBy::Key => UsageDimension::Key,
        GroupBy::Project => UsageDimension::Project,
        GroupBy::Operation => UsageDimension::Operation,
        GroupBy::Day => UsageDimension::Day,
        GroupBy::Identity => UsageDimension::Identity,
    };
    let (from, to) = range(state, days);
    let rows = state
        .store
        .usage_totals(
            &caller.workspace.id,
            &UsageQuery {
                key_id: None,
                identity_id,
                from,
                to,
            },
            dimension,
        )
        .await?;
    let mut groups: BTreeMap<Option<String>, Counts> = BTreeMap::new();
    let mut totals = Counts::default();
    for row in rows {
        add(
            &mut totals,
            &row.outcome,
            row.requests,
            row.tokens,
            row.cost,
        );
        add(
            groups.entry(row.group).or_default(),
            &row.outcome,
            row.requests,
            row.tokens,
            row.cost,
        );
    }
    let groups = if group_by == GroupBy::Day {
        // Every day, in order, like the key report.
        from.iter_days()
            .take_while(|d| *d <= to)
            .map(|d| UsageGroup {
                counts: groups
                    .get(&Some(d.to_string()))
                    .copied()
                    .unwrap_or_default(),
                group: GroupName::Date(d),
            })
            .collect()
    } else {
        ranked(groups, |name, counts| UsageGroup {
            group: match group_by {
                GroupBy::Project => GroupName::Project(name),
                GroupBy::Operation => GroupName::Operation(name.unwrap_or_default()),
                GroupBy::Identity => GroupName::IdentityId(name),
                GroupBy::Key | GroupBy::Day => GroupName::KeyId(name),
            },
            counts,
        })
    };
    Ok(WorkspaceUsage {
        group_by,
        from,
        to,
        groups,
        daily_average: daily_average(&totals, days),
        totals,
    })
}

/// The usage of the identity's keys over the last `days` UTC days, summed by key (default),
/// project, operation or day. Usage follows a key's current identity.
#[utoipa::path(get, path = "/v1/identities/{id}/usage", tag = "identities",
    params(("id" = String, Path, description = "The identity's id (`idt_…`)."), WorkspaceUsageParams),
    responses((status = 200, description = "The usage of the identity's keys, grouped.", body = WorkspaceUsage)))]
pub async fn get_identity_usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<WorkspaceUsageParams>,
) -> Result<Json<WorkspaceUsage>, ApiError> {
    let identity = load_identity(&state, &caller, &id).await?;
    grouped_usage(&state, &caller, params, Some(identity.id))
        .await
        .map(Json)
}

fn valid_days(days: Option<u32>) -> Result<u32, ApiError> {
    let days = days.unwrap_or(DEFAULT_DAYS);
    if (1..=MAX_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(ApiError::invalid(format!(
            "days must be between 1 and {MAX_DAYS}"
        )))
    }
}

/// The last `days` UTC days, today included.
fn range(state: &AppState, days: u32) -> (NaiveDate, NaiveDate) {
    let to = state.clock.now().date_naive();
    let from = to
        .checked_sub_days(Days::new(u64::from(days - 1)))
        .unwrap_or(to);
    (from, to)
}

/// Groups, most requests first (then most cost, then by name as JSON, so equal counts keep a
/// stable order), each made into its answer by `item`.
fn ranked<N: Serialize, T>(
    groups: impl IntoIterator<Item = (N, Counts)>,
    item: impl Fn(N, Counts) -> T,
) -> Vec<T> {
    let mut groups: Vec<(String, N, Counts)> = groups
        .into_iter()
        .map(|(name, counts)| {
            let sort_name = serde_json::to_string(&name).unwrap_or_default();
            (sort_name, name, counts)
        })
        .collect();
    groups.sort_by(|a, b| {
        b.2.requests
            .cmp(&a.2.requests)
            .then_with(|| b.2.cost.0.cmp(&a.2.cost.0))
            .then_with(|| a.0.cmp(&b.0))
    });
    groups
        .into_iter()
        .map(|(_, name, counts)| item(name, counts))
        .collect()
}

/// Per-day means over the whole range (zero days count): requests and tokens to two
/// decimals (whole numbers stay integers), cost in micros.
fn daily_average(totals: &Counts, days: u32) -> DailyAverage {
    let mean = |n: u64| {
        let days = u64::from(days);
        if n.is_multiple_of(days) {
            serde_json::Number::from(n / days)
        } else {
            serde_json::Number::from_f64((n as f64 / days as f64 * 100.0).round() / 100.0)
                .unwrap_or_else(|| serde_json::Number::from(n / days))
        }
    };
    DailyAverage {
        requests: mean(totals.requests),
        tokens: mean(totals.tokens),
        cost: Micros(totals.cost.0 / i64::from(days)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn averages_stay_integers_when_they_divide() {
        let totals = Counts {
            requests: 14,
            valid: 14,
            denied: 0,
            tokens: 10,
            cost: Micros(7_000_000),
        };
        assert_eq!(
            serde_json::to_value(daily_average(&totals, 7)).expect("json"),
            json!({"requests": 2, "tokens": 1.43, "cost": "1.00"})
        );
    }

    #[test]
    fn reported_usage_adds_tokens_but_no_requests() {
        let mut c = Counts::default();
        add(&mut c, "valid", 3, 10, Micros(5));
        add(&mut c, "rate_limited", 2, 0, Micros::ZERO);
        add(&mut c, UsageOutcome::Reported.as_str(), 0, 7, Micros(1));
        assert_eq!(
            (c.requests, c.valid, c.denied, c.tokens, c.cost),
            (5, 3, 2, 17, Micros(6))
        );
    }

    #[test]
    fn groups_are_named_by_their_one_field() {
        let group = UsageGroup {
            group: GroupName::KeyId(None),
            counts: Counts::default(),
        };
        assert_eq!(
            serde_json::to_value(&group).expect("json"),
            json!({"key_id": null, "requests": 0, "valid": 0, "denied": 0, "tokens": 0, "cost": "0.00"})
        );
        let day = DayUsage {
            date: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap_or_default(),
            counts: Counts::default(),
        };
        assert_eq!(
            serde_json::to_value(&day).expect("json")["date"],
            "2026-01-31"
        );
    }
}
