//! Usage reports, read from the daily rollups: `GET /v1/keys/{id}/usage` (one key, the numbers
//! a usage chart needs) and `GET /v1/usage` (the workspace, summed by key, project, operation
//! or day). Any member may read them.
//!
//! Every day of the range is present, zeros included, so a chart needs no gap filling. Days
//! are UTC. Events reach the rollups with the next usage flush (within a second by default),
//! so the last second of traffic may not be counted yet.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{Days, NaiveDate};
use keygate_core::Micros;
use keygate_store::{UsageDimension, UsageQuery};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::usage::REPORTED;

/// Longest report: a year, leap day included.
const MAX_DAYS: u32 = 366;
const DEFAULT_DAYS: u32 = 7;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUsageParams {
    days: Option<u32>,
}

/// Requests split into valid and denied, with what they consumed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    requests: u64,
    valid: u64,
    denied: u64,
    tokens: u64,
    cost: Micros,
}

impl Counts {
    fn add(&mut self, outcome: &str, requests: u64, tokens: u64, cost: Micros) {
        self.requests += requests;
        if outcome == "valid" {
            self.valid += requests;
        } else if outcome != REPORTED {
            self.denied += requests;
        }
        self.tokens = self.tokens.saturating_add(tokens);
        self.cost = self.cost.saturating_add(cost);
    }
}

/// `GET /v1/keys/{id}/usage?days=7`.
pub async fn get_key_usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<KeyUsageParams>,
) -> Result<Json<Value>, ApiError> {
    let days = valid_days(params.days)?;
    crate::routes::keys::load_key(&state, &caller, &id).await?;
    let (from, to) = range(&state, days);
    let rollups = state
        .store
        .usage_rollups(
            &caller.workspace.id,
            &UsageQuery {
                key_id: Some(id.clone()),
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
        let add = |c: &mut Counts| c.add(&r.outcome, r.requests, r.tokens, r.cost);
        add(per_day.entry(r.day).or_default());
        add(by_operation.entry(&r.operation).or_default());
        add(by_project.entry(r.project.as_deref()).or_default());
        add(by_outcome.entry(&r.outcome).or_default());
        add(&mut totals);
    }
    let days_json: Vec<Value> = per_day
        .iter()
        .map(|(day, c)| with_field("date", json!(day.to_string()), c))
        .collect();
    Ok(Json(json!({
        "key_id": id,
        "from": from.to_string(),
        "to": to.to_string(),
        "days": days_json,
        "by_operation": ranked(by_operation.into_iter().map(|(op, c)| (json!(op), c)), "operation"),
        "by_project": ranked(by_project.into_iter().map(|(p, c)| (json!(p), c)), "project"),
        "by_outcome": ranked(by_outcome.into_iter().map(|(o, c)| (json!(o), c)), "outcome"),
        "totals": totals,
        "daily_average": daily_average(&totals, days),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceUsageParams {
    days: Option<u32>,
    group_by: Option<String>,
}

/// `GET /v1/usage?group_by=key|project|operation|day&days=N`.
pub async fn get_workspace_usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<WorkspaceUsageParams>,
) -> Result<Json<Value>, ApiError> {
    let days = valid_days(params.days)?;
    let (dimension, field) = match params.group_by.as_deref().unwrap_or("key") {
        "key" => (UsageDimension::Key, "key_id"),
        "project" => (UsageDimension::Project, "project"),
        "operation" => (UsageDimension::Operation, "operation"),
        "day" => (UsageDimension::Day, "date"),
        _ => {
            return Err(ApiError::invalid(
                "group_by must be one of key, project, operation, day",
            ))
        }
    };
    let (from, to) = range(&state, days);
    let rows = state
        .store
        .usage_totals(
            &caller.workspace.id,
            &UsageQuery {
                key_id: None,
                from,
                to,
            },
            dimension,
        )
        .await?;
    let mut groups: BTreeMap<Option<String>, Counts> = BTreeMap::new();
    let mut totals = Counts::default();
    for row in rows {
        totals.add(&row.outcome, row.requests, row.tokens, row.cost);
        groups
            .entry(row.group)
            .or_default()
            .add(&row.outcome, row.requests, row.tokens, row.cost);
    }
    let groups = if dimension == UsageDimension::Day {
        // Every day, in order, like the key report.
        from.iter_days()
            .take_while(|d| *d <= to)
            .map(|d| {
                let counts = groups
                    .get(&Some(d.to_string()))
                    .copied()
                    .unwrap_or_default();
                with_field(field, json!(d.to_string()), &counts)
            })
            .collect()
    } else {
        ranked(groups.into_iter().map(|(g, c)| (json!(g), c)), field)
    };
    Ok(Json(json!({
        "group_by": params.group_by.as_deref().unwrap_or("key"),
        "from": from.to_string(),
        "to": to.to_string(),
        "groups": groups,
        "totals": totals,
        "daily_average": daily_average(&totals, days),
    })))
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

/// `counts` as a JSON object with one more field in front.
fn with_field(name: &str, value: Value, counts: &Counts) -> Value {
    let mut object = serde_json::Map::new();
    object.insert(name.to_owned(), value);
    if let Value::Object(fields) = json!(counts) {
        object.extend(fields);
    }
    Value::Object(object)
}

/// Groups, most requests first (then by name, so equal counts keep a stable order).
fn ranked(groups: impl Iterator<Item = (Value, Counts)>, field: &str) -> Vec<Value> {
    let mut groups: Vec<(Value, Counts)> = groups.collect();
    groups.sort_by(|a, b| {
        b.1.requests
            .cmp(&a.1.requests)
            .then_with(|| b.1.cost.0.cmp(&a.1.cost.0))
            .then_with(|| a.0.to_string().cmp(&b.0.to_string()))
    });
    groups
        .iter()
        .map(|(name, counts)| with_field(field, name.clone(), counts))
        .collect()
}

/// Per-day means over the whole range (zero days count): requests and tokens to two
/// decimals (whole numbers stay integers), cost in micros.
fn daily_average(totals: &Counts, days: u32) -> Value {
    let mean = |n: u64| {
        let days = u64::from(days);
        if n.is_multiple_of(days) {
            json!(n / days)
        } else {
            json!((n as f64 / days as f64 * 100.0).round() / 100.0)
        }
    };
    json!({
        "requests": mean(totals.requests),
        "tokens": mean(totals.tokens),
        "cost": Micros(totals.cost.0 / i64::from(days)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            daily_average(&totals, 7),
            json!({"requests": 2, "tokens": 1.43, "cost": "1.00"})
        );
    }

    #[test]
    fn reported_usage_adds_tokens_but_no_requests() {
        let mut c = Counts::default();
        c.add("valid", 3, 10, Micros(5));
        c.add("rate_limited", 2, 0, Micros::ZERO);
        c.add(REPORTED, 0, 7, Micros(1));
        assert_eq!(
            (c.requests, c.valid, c.denied, c.tokens, c.cost),
            (5, 3, 2, 17, Micros(6))
        );
    }
}
