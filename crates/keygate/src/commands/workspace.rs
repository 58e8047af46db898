//! `keygate workspace show|update`: the workspace's name and policies.

use serde_json::{json, Map, Value};

use super::Context;
use crate::cli::WorkspaceCommand;
use crate::error::CliError;
use crate::output::Tone;

pub async fn run(ctx: &Context, command: WorkspaceCommand) -> Result<(), CliError> {
    let workspace = match command {
        WorkspaceCommand::Show => ctx.client.get("/v1/workspace", &[]).await?,
        WorkspaceCommand::Update {
            name,
            single_active_key,
            default_rpm,
            credit_balance,
        } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            if let Some(single) = single_active_key {
                body.insert("single_active_key".into(), json!(single));
            }
            if let Some(rpm) = default_rpm {
                body.insert(
                    "default_rate_limits".into(),
                    json!([{"limit": rpm, "window": "1m"}]),
                );
            }
            if let Some(balance) = credit_balance {
                let value = if balance == "none" {
                    Value::Null
                } else {
                    json!(balance)
                };
                body.insert("credit_balance".into(), value);
            }
            if body.is_empty() {
                return Err(CliError::usage(
                    "nothing to change: give --name, --single-active-key, --default-rpm or --credit-balance",
                ));
            }
            let saved = ctx
                .client
                .patch("/v1/workspace", &Value::Object(body))
                .await?;
            if !ctx.out.json {
                ctx.out.done("Updated the workspace.");
            }
            saved
        }
    };
    if ctx.out.json {
        ctx.out.print_json(&workspace);
        return Ok(());
    }
    let out = &ctx.out;
    let row = |label: &str, value: String| println!("{:<19}{value}", out.paint(Tone::Dim, label));
    let text = |f: &str| workspace[f].as_str().unwrap_or("").to_string();
    row("ID", text("id"));
    row("Name", text("name"));
    row("Key prefix", text("key_prefix"));
    row(
        "Single active key",
        if workspace["single_active_key"] == true {
            "yes"
        } else {
            "no"
        }
        .into(),
    );
    let windows = |v: &Value| {
        v.as_array()
            .map(|ws| {
                ws.iter()
                    .map(|w| format!("{}/{}", w["limit"], w["window"].as_str().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    };
    row(
        "Default rate limit",
        windows(&workspace["default_rate_limits"]),
    );
    if let Some(policies) = workspace["rate_limit_policies"].as_object() {
        for (name, ws) in policies {
            row("Policy", format!("{name}: {}", windows(ws)));
        }
    }
    row(
        "Credit balance",
        match workspace["credit_balance"].as_str() {
            Some(b) => format!("${b}"),
            None => "not credit-limited".into(),
        },
    );
    Ok(())
}
