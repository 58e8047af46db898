//! `keygate audit`: the workspace's audit trail, newest first, filtered on the server.

use serde_json::Value;

use super::Context;
use crate::cli::AuditArgs;
use crate::client::is_missing_route;
use crate::error::CliError;
use crate::output::relative_field;

pub async fn run(ctx: &Context, args: &AuditArgs) -> Result<(), CliError> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(key) = &args.key {
        // Names are for people; the API filters by id.
        let id = if keygate_core::ids::looks_like("key", key) {
            key.clone()
        } else {
            let page = ctx
                .client
                .get(
                    "/v1/keys",
                    &[("search", key.clone()), ("limit", "500".into())],
                )
                .await?;
            page["items"]
                .as_array()
                .and_then(|items| items.iter().find(|k| k["name"] == key.as_str()))
                .and_then(|k| k["id"].as_str())
                .map(str::to_string)
                .ok_or_else(|| CliError::failed(format!("no key with the id or name {key:?}")))?
        };
        query.push(("key_id", id));
    }
    for (name, value) in [
        ("actor", &args.actor),
        ("action", &args.action),
        ("since", &args.since),
        ("until", &args.until),
    ] {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let page = ctx.client.get("/v1/audit", &query).await.map_err(|e| {
        if is_missing_route(&e) {
            CliError::failed_hint(
                "this Keygate server does not serve the audit trail yet",
                "Upgrade the server.",
            )
        } else {
            e
        }
    })?;
    if ctx.out.json {
        ctx.out.print_json(&page);
        return Ok(());
    }
    let items = page["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("No audit entries match.");
        return Ok(());
    }
    let mut table = ctx
        .out
        .table(&["WHEN", "ACTOR", "ACTION", "TARGET", "FROM", "REQUEST"]);
    for e in &items {
        table.add_row(vec![
            relative_field(&e["at"], ""),
            field(e, "actor"),
            field(e, "action"),
            field(e, "target_id"),
            field(e, "source_ip"),
            field(e, "request_id"),
        ]);
    }
    println!("{table}");
    Ok(())
}

fn field(value: &Value, name: &str) -> String {
    value[name].as_str().unwrap_or("").to_string()
}
