//! `keygate audit`: the workspace's audit trail, newest first, filtered on the server.

use chrono::{DateTime, Utc};
use keygate_api::audit::{AuditAction, AuditPage, AuditParams};
use keygate_api::keys::{KeyPage, ListKeys};

use super::Context;
use crate::cli::AuditArgs;
use crate::client::is_missing_route;
use crate::error::CliError;
use crate::output::relative_time;

pub async fn run(ctx: &Context, args: &AuditArgs) -> Result<(), CliError> {
    let mut query = AuditParams {
        actor: args.actor.clone(),
        action: args.action.as_deref().map(action).transpose()?,
        since: args.since.as_deref().map(time).transpose()?,
        until: args.until.as_deref().map(time).transpose()?,
        limit: args.limit,
        ..AuditParams::default()
    };
    if let Some(key) = &args.key {
        // Names are for people; the API filters by id.
        let id = if keygate_core::ids::looks_like("key", key) {
            key.clone()
        } else {
            let search = ListKeys {
                search: Some(key.clone()),
                limit: Some(500),
                ..ListKeys::default()
            };
            let page: KeyPage = ctx.client.get("/v1/keys", &search).await?;
            page.items
                .into_iter()
                .find(|k| k.name == *key)
                .map(|k| k.id)
                .ok_or_else(|| CliError::failed(format!("no key with the id or name {key:?}")))?
        };
        query.key_id = Some(id);
    }
    let answer = ctx.client.get_raw("/v1/audit", &query).await.map_err(|e| {
        if is_missing_route(&e) {
            CliError::failed_hint(
                "this Keygate server does not serve the audit trail yet",
                "Upgrade the server.",
            )
        } else {
            e
        }
    })?;
    let page: AuditPage = ctx.client.decode(&answer)?;
    if ctx.out.json {
        ctx.out.print_json(&answer);
        return Ok(());
    }
    if page.items.is_empty() {
        println!("No audit entries match.");
        return Ok(());
    }
    let now = Utc::now();
    let mut table = ctx
        .out
        .table(&["WHEN", "ACTOR", "ACTION", "TARGET", "FROM", "REQUEST"]);
    for e in page.items {
        table.add_row(vec![
            relative_time(e.at, now),
            e.actor,
            e.action.as_str().to_string(),
            e.target_id,
            e.source_ip.unwrap_or_default(),
            e.request_id.unwrap_or_default(),
        ]);
    }
    println!("{table}");
    Ok(())
}

/// `--action`, one of the actions the audit trail records.
fn action(text: &str) -> Result<AuditAction, CliError> {
    AuditAction::parse(text).ok_or_else(|| {
        let known: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        CliError::usage_hint(
            format!("--action {text:?} is not an audit action"),
            format!("Use one of: {}.", known.join(", ")),
        )
    })
}

/// `--since`/`--until`, already an RFC 3339 time (see `cli::parse_since`).
fn time(text: &str) -> Result<DateTime<Utc>, CliError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| CliError::usage(format!("{text:?} is not an RFC 3339 time: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_travel_as_the_contract_says_and_unset_ones_not_at_all() {
        let query = AuditParams {
            action: Some(action("key.revoke").expect("an action")),
            since: Some(time("2027-01-31T10:00:00+02:00").expect("a time")),
            limit: Some(5),
            ..AuditParams::default()
        };
        let built = reqwest::Client::new()
            .get("http://localhost/v1/audit")
            .query(&query)
            .build()
            .expect("a request");
        assert_eq!(
            built.url().query(),
            Some("action=key.revoke&since=2027-01-31T08%3A00%3A00Z&limit=5")
        );
        assert!(matches!(action("key.made_up"), Err(CliError::Usage { .. })));
    }
}
