//! `keygate identities …`: the workspace's customers, each holding keys whose limits they
//! share. Every command that takes an identity accepts its id or its external id.

use keygate_api::identities::{CreateIdentity, IdentityPage, ListIdentities, UpdateIdentity};
use keygate_api::usage::{GroupBy, GroupName, WorkspaceUsage, WorkspaceUsageParams};
use keygate_api::{Identity, KeyLimits};
use serde_json::Value;

use super::{flags, Context};
use crate::cli::IdentitiesCommand;
use crate::error::CliError;
use crate::output::{limit_parts, relative_time, thousands, Output, Tone};

pub async fn run(ctx: &Context, command: IdentitiesCommand) -> Result<(), CliError> {
    match command {
        IdentitiesCommand::Create {
            external_id,
            name,
            metadata,
            limits,
        } => {
            let body = CreateIdentity {
                external_id,
                name,
                metadata: metadata
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
                limits: flags::limits(KeyLimits::default(), &limits)?.unwrap_or_default(),
            };
            let answer = ctx.client.post_raw("/v1/identities", &body).await?;
            let created: Identity = ctx.client.decode(&answer)?;
            if ctx.out.json {
                ctx.out.print_json(&answer);
            } else {
                ctx.out.done(&format!(
                    "Created identity {} ({}). Give it keys with `keygate keys create --identity {}`.",
                    created.external_id, created.id, created.external_id
                ));
                print_identity(&ctx.out, &created);
            }
        }
        IdentitiesCommand::List { all } => list(ctx, all).await?,
        IdentitiesCommand::Show { identity } => {
            let found = flags::identity(ctx, &identity).await?;
            if ctx.out.json {
                ctx.out
                    .print_json(&serde_json::to_value(&found).unwrap_or(Value::Null));
            } else {
                print_identity(&ctx.out, &found);
            }
        }
        IdentitiesCommand::Update {
            identity,
            external_id,
            name,
            clear_limits,
            limits,
        } => {
            let current = flags::identity(ctx, &identity).await?;
            let base = if clear_limits {
                KeyLimits::default()
            } else {
                current.limits.clone()
            };
            let body = UpdateIdentity {
                external_id,
                // A blank name removes it.
                name: name.map(|n| Some(n).filter(|n| !n.trim().is_empty())),
                metadata: None,
                limits: match flags::limits(base, &limits)? {
                    Some(limits) => Some(limits),
                    None if clear_limits => Some(KeyLimits::default()),
                    None => None,
                },
            };
            if body.external_id.is_none() && body.name.is_none() && body.limits.is_none() {
                return Err(CliError::usage_hint(
                    "nothing to change",
                    "Give at least one of --external-id, --name, --clear-limits or a limit.",
                ));
            }
            let answer = ctx
                .client
                .patch_raw(&format!("/v1/identities/{}", current.id), &body)
                .await?;
            let saved: Identity = ctx.client.decode(&answer)?;
            if ctx.out.json {
                ctx.out.print_json(&answer);
            } else {
                ctx.out.done(&format!(
                    "Updated identity {} ({}).",
                    saved.external_id, saved.id
                ));
                print_identity(&ctx.out, &saved);
            }
        }
        IdentitiesCommand::Delete { identity } => {
            let found = flags::identity(ctx, &identity).await?;
            ctx.client
                .delete(&format!("/v1/identities/{}", found.id))
                .await?;
            if ctx.out.json {
                ctx.out
                    .print_json(&serde_json::json!({"deleted": found.id}));
            } else {
                ctx.out.done(&format!(
                    "Deleted identity {} ({}).",
                    found.external_id, found.id
                ));
            }
        }
        IdentitiesCommand::Usage { identity, days } => {
            let found = flags::identity(ctx, &identity).await?;
            let params = WorkspaceUsageParams {
                days: Some(days),
                group_by: Some(GroupBy::Key),
            };
            let answer = ctx
                .client
                .get_raw(&format!("/v1/identities/{}/usage", found.id), &params)
                .await?;
            let report: WorkspaceUsage = ctx.client.decode(&answer)?;
            if ctx.out.json {
                ctx.out.print_json(&answer);
            } else {
                print_usage(ctx, &found, &report);
            }
        }
    }
    Ok(())
}

async fn list(ctx: &Context, all: bool) -> Result<(), CliError> {
    let mut query = ListIdentities::default();
    let mut items: Vec<Identity> = Vec::new();
    let mut raw: Vec<Value> = Vec::new();
    loop {
        let answer = ctx.client.get_raw("/v1/identities", &query).await?;
        let page: IdentityPage = ctx.client.decode(&answer)?;
        if let Some(list) = answer["items"].as_array() {
            raw.extend(list.iter().cloned());
        }
        items.extend(page.items);
        match page.next_cursor {
            Some(cursor) if all => query.cursor = Some(cursor),
            _ => break,
        }
    }
    if ctx.out.json {
        ctx.out.print_json(&serde_json::json!({ "items": raw }));
        return Ok(());
    }
    if items.is_empty() {
        println!(
            "No identities. Create one with `keygate identities create --external-id YOUR_CUSTOMER_ID`."
        );
        return Ok(());
    }
    let now = chrono::Utc::now();
    let mut table = ctx
        .out
        .table(&["ID", "EXTERNAL ID", "NAME", "LIMITS", "CREATED"]);
    for identity in &items {
        let limits = limit_parts(&identity.limits);
        table.add_row(vec![
            identity.id.clone(),
            identity.external_id.clone(),
            identity.name.clone().unwrap_or_default(),
            if limits.is_empty() {
                "none".into()
            } else {
                limits.join("; ")
            },
            relative_time(identity.created_at, now),
        ]);
    }
    println!("{table}");
    Ok(())
}

fn print_identity(out: &Output, identity: &Identity) {
    let row = |label: &str, value: String| {
        println!("{:<13}{value}", out.paint(Tone::Dim, label));
    };
    row("ID", identity.id.clone());
    row("External ID", out.paint(Tone::Bold, &identity.external_id));
    if let Some(name) = &identity.name {
        row("Name", name.clone());
    }
    let limits = limit_parts(&identity.limits);
    row(
        "Limits",
        if limits.is_empty() {
            "none (each key's own limits only)".into()
        } else {
            limits.join("; ")
        },
    );
    row(
        "Created",
        relative_time(identity.created_at, chrono::Utc::now()),
    );
    if !identity.metadata.is_empty() {
        row(
            "Metadata",
            Value::Object(identity.metadata.clone()).to_string(),
        );
    }
}

fn print_usage(ctx: &Context, identity: &Identity, report: &WorkspaceUsage) {
    println!(
        "Usage of identity {} ({}), {} – {} (UTC)",
        identity.external_id, identity.id, report.from, report.to
    );
    let mut table = ctx
        .out
        .table(&["KEY", "REQUESTS", "VALID", "DENIED", "TOKENS", "COST"]);
    for group in &report.groups {
        let key = match &group.group {
            GroupName::KeyId(Some(id)) => id.clone(),
            _ => "(unidentified)".into(),
        };
        let c = &group.counts;
        table.add_row(vec![
            key,
            thousands(c.requests),
            thousands(c.valid),
            thousands(c.denied),
            thousands(c.tokens),
            format!("${}", c.cost),
        ]);
    }
    let t = &report.totals;
    table.add_row(vec![
        "total".into(),
        thousands(t.requests),
        thousands(t.valid),
        thousands(t.denied),
        thousands(t.tokens),
        format!("${}", t.cost),
    ]);
    println!("{table}");
}
